"""The fake LINE API behaves like the documented one (tests/fakes/line_api.py cites where)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid

import httpx
import pytest

from tests.fakes import line_webhooks as hooks
from tests.fakes.line_api import RATE_LIMITED, RETRY_KEY_ACCEPTED, FakeLineAPI

TOKEN = "channel-access-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
USER = hooks.user_id()


@pytest.fixture
async def fake():
    async with FakeLineAPI(tokens=[TOKEN]) as fake:
        yield fake


def push(text: str = "hello", to: str = USER) -> dict:
    return {"to": to, "messages": [{"type": "text", "text": text}]}


async def test_a_push_needs_the_token_and_answers_sent_messages_with_a_request_id(fake):
    async with httpx.AsyncClient(base_url=fake.api_url) as http:
        refused = await http.post("/v2/bot/message/push", json=push())
        assert refused.status_code == 401 and set(refused.json()) == {"message"}
        taken = await http.post("/v2/bot/message/push", json=push(), headers=BEARER)
    assert taken.status_code == 200 and taken.headers["x-line-request-id"]
    [sent] = taken.json()["sentMessages"]
    assert sent["id"].isdigit()
    [delivered] = fake.pushes()
    assert delivered.to == USER and delivered.message_ids == [sent["id"]]


async def test_the_same_retry_key_is_executed_once_and_answered_409_naming_the_accepted_request(fake):
    key = str(uuid.uuid4())
    headers = {**BEARER, "X-Line-Retry-Key": key}
    async with httpx.AsyncClient(base_url=fake.api_url) as http:
        first = await http.post("/v2/bot/message/push", json=push(), headers=headers)
        again = await http.post("/v2/bot/message/push", json=push(), headers=headers)
        bad_key = await http.post("/v2/bot/message/push", json=push(), headers={**BEARER, "X-Line-Retry-Key": "x"})
    assert again.status_code == 409 and again.json()["message"] == RETRY_KEY_ACCEPTED
    assert again.headers["x-line-accepted-request-id"] == first.headers["x-line-request-id"]
    assert again.json()["sentMessages"] == first.json()["sentMessages"]
    assert bad_key.status_code == 400
    assert len(fake.pushes()) == 1


async def test_malformed_pushes_get_lines_error_body_with_details(fake):
    body = {"to": USER, "messages": [{"type": "text", "text": ""}, {"type": "image", "originalContentUrl": "http://x"}]}
    async with httpx.AsyncClient(base_url=fake.api_url) as http:
        answer = await http.post("/v2/bot/message/push", json=body, headers=BEARER)
        too_many = await http.post("/v2/bot/message/push", json={"to": USER, "messages": [push()] * 6}, headers=BEARER)
    assert answer.status_code == 400
    error = answer.json()
    assert error["message"] == "The request body has 3 error(s)"
    assert {d["property"] for d in error["details"]} == {
        "messages[0].text",
        "messages[1].originalContentUrl",
        "messages[1].previewImageUrl",
    }
    assert too_many.status_code == 400 and too_many.json()["details"][0]["property"] == "messages"
    assert fake.pushes() == []


async def test_injected_failures_send_nothing_and_a_dropped_answer_still_delivers(fake):
    fake.fail_rate_limited(retry_after=2)
    fake.drop_next()
    key = {**BEARER, "X-Line-Retry-Key": str(uuid.uuid4())}
    async with httpx.AsyncClient(base_url=fake.api_url) as http:
        limited = await http.post("/v2/bot/message/push", json=push(), headers=key)
        with pytest.raises(httpx.HTTPError):
            await http.post("/v2/bot/message/push", json=push(), headers=key)
        retried = await http.post("/v2/bot/message/push", json=push(), headers=key)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
    assert limited.json() == {"message": RATE_LIMITED}
    assert retried.status_code == 409
    assert [r.outcome for r in fake.push_requests()] == ["injected", "dropped", "conflict"]
    assert len(fake.pushes()) == 1


async def test_content_is_on_the_data_host_only_and_profiles_give_display_names(fake):
    fake.add_content("1001", b"jpeg bytes", "image/jpeg", not_ready=1)
    fake.add_profile(USER, "Carol", language="ja")
    async with httpx.AsyncClient() as http:
        wrong_host = await http.get(f"{fake.api_url}/v2/bot/message/1001/content", headers=BEARER)
        preparing = await http.get(f"{fake.data_api_url}/v2/bot/message/1001/content", headers=BEARER)
        content = await http.get(f"{fake.data_api_url}/v2/bot/message/1001/content", headers=BEARER)
        unknown = await http.get(f"{fake.data_api_url}/v2/bot/message/404/content", headers=BEARER)
        profile = await http.get(f"{fake.api_url}/v2/bot/profile/{USER}", headers=BEARER)
        stranger = await http.get(f"{fake.api_url}/v2/bot/profile/{hooks.user_id()}", headers=BEARER)
    assert wrong_host.status_code == 404 and preparing.status_code == 202
    assert (content.status_code, content.content, content.headers["content-type"]) == (200, b"jpeg bytes", "image/jpeg")
    assert unknown.status_code == 404 and stranger.status_code == 404
    assert profile.json() == {"displayName": "Carol", "userId": USER, "language": "ja"}


def test_webhook_bodies_are_signed_over_their_exact_bytes():
    event = hooks.text(USER, "こんにちは")
    body = hooks.encode(hooks.callback(event))
    assert "こんにちは".encode() in body  # UTF-8, not escaped
    digest = hmac.new(b"secret", body, hashlib.sha256).digest()
    assert hooks.sign("secret", body) == base64.b64encode(digest).decode()
    parsed = json.loads(body)
    assert parsed["destination"] == hooks.BOT_USER_ID and len(event["webhookEventId"]) == 26
    assert parsed["events"][0]["deliveryContext"] == {"isRedelivery": False}
    assert hooks.redelivered(event)["webhookEventId"] == event["webhookEventId"]
