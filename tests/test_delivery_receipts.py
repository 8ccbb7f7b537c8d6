"""A web-widget visitor's receipts race the delivery worker: the visitor's stream carries a
reply (DELIVERED) as soon as it is written, often before the worker has recorded SENT.
Whatever the order, the visitor's READ must still find the reply, and a reply already READ
must not be left waiting for receipts that can't come.

These drive the store (``api.store.deliveries``) on the test database in each order, because
through the server the order is up to the scheduler (this race once failed CI).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from api.store import codec
from api.store.deliveries import Deliveries, Job
from domain.delivery import statuses_that_may_become
from domain.entities import Delivery, Message
from domain.enums import DeliveryStatus, DeliveryVia, MessageKind, SenderKind

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
DELIVERED = DeliveryStatus.DELIVERED
READ = DeliveryStatus.READ


@pytest.fixture
async def deliveries(raw_db):
    name = f"receipts_{secrets.token_hex(4)}"
    yield Deliveries(raw_db[name])
    await raw_db.drop_database(name)


async def claimed_reply(deliveries: Deliveries, conversation_id: str) -> Job:
    """A queued agent reply in a widget conversation, claimed by a worker about to record SENT."""
    message = Message(
        id=secrets.token_hex(12),
        org_id="org",
        conversation_id=conversation_id,
        seq=1,
        sender_kind=SenderKind.MEMBER,
        kind=MessageKind.TEXT,
        text="We do!",
        created_at=NOW,
        sender_member_id="alice",
        channel_id="widget",
        deliveries=(Delivery(via=DeliveryVia.CHANNEL, status=DeliveryStatus.QUEUED),),
    )
    token = secrets.token_hex(8)
    await deliveries.messages.insert_one({**codec.message_doc(message), "outbox_claim": token})
    return Job(message=message, token=token, sending=True)


async def worker_records_sent(deliveries: Deliveries, job: Job) -> None:
    sent = Delivery(via=DeliveryVia.CHANNEL, status=DeliveryStatus.SENT, attempts=1, at=NOW)
    extra = Deliveries.sent_fields("widget", job.message.conversation_id, None)
    await deliveries.record(job, sent, None, extra)


async def visitor_reports(deliveries: Deliveries, job: Job, status: DeliveryStatus) -> Message | None:
    return await deliveries.report_by_id(job.id, status, statuses_that_may_become(status), NOW)


async def reading_finds(deliveries: Deliveries, conversation_id: str) -> list[str]:
    return await deliveries.up_to(conversation_id, NOW + timedelta(seconds=1), statuses_that_may_become(READ))


async def test_a_reply_delivered_before_the_worker_recorded_sent_can_still_be_read(deliveries):
    job = await claimed_reply(deliveries, "c1")
    delivered = await visitor_reports(deliveries, job, DELIVERED)
    assert delivered is not None and delivered.deliveries[0].status == DELIVERED
    assert await reading_finds(deliveries, "c1") == [job.id]  # before the worker wrote anything
    await worker_records_sent(deliveries, job)
    stored = codec.message(await deliveries.messages.find_one({"_id": job.id}))
    assert stored.deliveries[0].status == DELIVERED  # the worker's SENT did not move it back
    assert await reading_finds(deliveries, "c1") == [job.id]
    read = await visitor_reports(deliveries, job, READ)
    assert read is not None and read.deliveries[0].status == READ
    assert await reading_finds(deliveries, "c1") == []


async def test_a_reply_read_before_the_worker_recorded_sent_waits_for_nothing(deliveries):
    job = await claimed_reply(deliveries, "c2")
    assert await visitor_reports(deliveries, job, DELIVERED) is not None
    assert await visitor_reports(deliveries, job, READ) is not None
    await worker_records_sent(deliveries, job)
    doc = await deliveries.messages.find_one({"_id": job.id})
    assert doc["deliveries"]["CHANNEL"]["status"] == "READ"
    assert "receipt_pending" not in doc  # no receipt will come: it leaves the pending index
    assert await reading_finds(deliveries, "c2") == []


async def test_in_the_usual_order_sent_then_delivered_then_read(deliveries):
    job = await claimed_reply(deliveries, "c3")
    await worker_records_sent(deliveries, job)
    assert await reading_finds(deliveries, "c3") == [job.id]
    assert (await visitor_reports(deliveries, job, DELIVERED)).deliveries[0].status == DELIVERED
    assert (await visitor_reports(deliveries, job, READ)).deliveries[0].status == READ
    assert "receipt_pending" not in await deliveries.messages.find_one({"_id": job.id})
