"""The fake Meta Graph API behaves like the documented one (tests/fakes/meta_graph.py cites where)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import httpx
import pytest

from tests.fakes.meta_graph import FakeGraphAPI
from tests.fakes.meta_webhooks import (
    APP_ID,
    button_reply,
    encode,
    list_reply,
    messenger_attachment,
    messenger_delivery,
    messenger_message,
    messenger_read,
    sign,
    signed_post,
    whatsapp_error,
    whatsapp_message,
    whatsapp_status,
)

WA_TOKEN = "wa-system-user-token"
PAGE_TOKEN = "page-access-token"
PHONE_ID = "106540352242922"
BEARER = {"Authorization": f"Bearer {WA_TOKEN}"}


@pytest.fixture
async def graph():
    async with FakeGraphAPI(tokens=[WA_TOKEN, PAGE_TOKEN]) as graph:
        yield graph


@pytest.fixture
async def client(graph):
    async with httpx.AsyncClient(base_url=graph.base_url, timeout=10) as client:
        yield client


def text(to: str = "16505551234", body: str = "Hello") -> dict:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": body},
    }


def messenger_text(psid: str = "2468", body: str = "Hi", **extra) -> dict:
    return {"recipient": {"id": psid}, "messaging_type": "RESPONSE", "message": {"text": body}, **extra}


async def test_whatsapp_send_answers_as_the_cloud_api_and_is_recorded(graph, client):
    assert graph.base_url == f"http://127.0.0.1:{graph.port}/v21.0"
    response = await client.post(f"/{PHONE_ID}/messages", json=text(body="hello"), headers=BEARER)

    assert response.status_code == 200
    answer = response.json()
    wamid = answer["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    assert answer == {
        "messaging_product": "whatsapp",
        "contacts": [{"input": "16505551234", "wa_id": "16505551234"}],
        "messages": [{"id": wamid}],
    }
    [sent] = graph.sent_whatsapp()
    assert (sent.id, sent.node, sent.body["text"]["body"]) == (wamid, PHONE_ID, "hello")
    record = graph.requests[0]
    assert (record.method, record.path, record.outcome, record.status) == (
        "POST",
        f"/v21.0/{PHONE_ID}/messages",
        "accepted",
        200,
    )
    assert record.headers["authorization"] == f"Bearer {WA_TOKEN}"


async def test_whatsapp_send_checks_the_token_and_the_message_shape(graph, client):
    unknown = await client.post(f"/{PHONE_ID}/messages", json=text(), headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == 190
    assert unknown.json()["error"]["type"] == "OAuthException"

    image = {"link": "https://example.test/a.jpg", "caption": "a cat"}
    template = {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "4711"}]}],
    }
    valid = [
        {**text(), "type": "image", "image": image},
        {**text(), "type": "document", "document": {"id": "1234", "filename": "invoice.pdf"}},
        {**text(), "type": "template", "template": template},
    ]
    invalid = [
        {**text(), "text": {}},  # no body
        {**text(), "messaging_product": "sms"},
        {**text(), "type": "image", "image": {"caption": "no link nor id"}},
        {**text(), "type": "image", "image": {**image, "filename": "a.jpg"}},  # filename is for documents
        {**text(), "type": "template", "template": {"name": "order_update"}},  # no language
        {
            **text(),
            "type": "template",
            "template": {**template, "components": [{"type": "body", "parameters": [{"type": "text"}]}]},
        },
    ]
    for body in valid:
        assert (await client.post(f"/{PHONE_ID}/messages", json=body, headers=BEARER)).status_code == 200, body
    for body in invalid:
        response = await client.post(f"/{PHONE_ID}/messages", json=body, headers=BEARER)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert error["code"] == 100 and error["error_data"]["messaging_product"] == "whatsapp", error
        assert error["fbtrace_id"]
    assert len(graph.sent_whatsapp()) == len(valid)
    assert [r.outcome for r in graph.sends()].count("rejected") == 1 + len(invalid)


async def test_messenger_send_takes_the_page_token_and_checks_messaging_type(graph, client):
    url = f"/me/messages?access_token={PAGE_TOKEN}"
    response = await client.post(url, json=messenger_text())
    assert response.status_code == 200
    assert response.json()["recipient_id"] == "2468"
    first_mid = response.json()["message_id"]
    assert first_mid.startswith("m_")

    attachment = {
        "attachment": {"type": "image", "payload": {"url": "https://example.test/a.png", "is_reusable": True}}
    }
    tagged = messenger_text(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
    bearer = {"Authorization": f"Bearer {PAGE_TOKEN}"}
    assert (await client.post("/me/messages", json=tagged, headers=bearer)).status_code == 200
    assert (await client.post(url, json={**messenger_text(), "message": attachment})).status_code == 200

    for body in (
        messenger_text(messaging_type="MESSAGE_TAG"),  # a tag is required
        messenger_text(messaging_type="PROMOTION"),
        {**messenger_text(), "message": {}},
        {**messenger_text(), "message": {"attachment": {"type": "image", "payload": {}}}},
    ):
        response = await client.post(url, json=body)
        assert response.status_code == 400 and response.json()["error"]["code"] == 100, body
    assert (await client.post("/me/messages", json=messenger_text())).status_code == 401

    sent = graph.sent_messenger()
    assert [s.body["messaging_type"] for s in sent] == ["RESPONSE", "MESSAGE_TAG", "RESPONSE"]
    assert sent[0].id == first_mid


async def test_media_url_needs_the_bearer_and_serves_the_bytes(graph, client):
    data = b"\x89PNG fake image bytes"
    media_id = graph.add_media(data, "image/png")

    meta = (await client.get(f"/{media_id}", headers=BEARER)).json()
    assert meta == {
        "messaging_product": "whatsapp",
        "url": f"{graph.origin}/media-download/{media_id}",
        "mime_type": "image/png",
        "sha256": hashlib.sha256(data).hexdigest(),
        "file_size": str(len(data)),
        "id": media_id,
    }
    assert (await client.get(f"/{media_id}")).status_code == 401
    assert (await client.get(meta["url"])).status_code == 401  # lookaside wants the token too
    download = await client.get(meta["url"], headers=BEARER)
    assert (download.status_code, download.content, download.headers["content-type"]) == (200, data, "image/png")

    cdn = graph.add_cdn_file(b"%PDF-1.4", "application/pdf")
    assert cdn.startswith(f"{graph.origin}/cdn/")
    public = await client.get(cdn)  # Messenger's attachment URLs need no token
    assert (public.content, public.headers["content-type"]) == (b"%PDF-1.4", "application/pdf")


async def test_user_profile_by_psid(graph, client):
    graph.add_profile("2468", "Ada", "Lovelace")
    response = await client.get("/2468", params={"fields": "first_name,last_name", "access_token": PAGE_TOKEN})
    assert response.json() == {"first_name": "Ada", "last_name": "Lovelace", "id": "2468"}
    missing = await client.get("/1357", params={"fields": "first_name,last_name", "access_token": PAGE_TOKEN})
    assert missing.status_code == 400
    assert (missing.json()["error"]["code"], missing.json()["error"]["error_subcode"]) == (100, 33)


async def test_injected_failures_use_the_graph_envelope_then_recover(graph, client):
    graph.fail_reengagement()
    graph.fail_rate_limited(retry_after=7)
    graph.fail_throttled(retry_after=2)
    graph.fail_unavailable()
    graph.fail_next(1, 502, body="<html>Bad Gateway</html>")

    reengagement = await client.post(f"/{PHONE_ID}/messages", json=text(), headers=BEARER)
    assert reengagement.status_code == 400
    error = reengagement.json()["error"]
    assert (error["code"], error["message"], error["type"]) == (
        131047,
        "(#131047) Re-engagement message",
        "OAuthException",
    )
    assert error["error_data"]["messaging_product"] == "whatsapp" and "24 hours" in error["error_data"]["details"]

    rate = await client.post(f"/{PHONE_ID}/messages", json=text(), headers=BEARER)
    assert (rate.status_code, rate.json()["error"]["code"], rate.headers["retry-after"]) == (400, 130429, "7")

    throttled = await client.post(f"/me/messages?access_token={PAGE_TOKEN}", json=messenger_text())
    assert (throttled.status_code, throttled.json()["error"]["code"], throttled.headers["retry-after"]) == (429, 4, "2")
    assert "error_data" not in throttled.json()["error"]

    unavailable = await client.post(f"/{PHONE_ID}/messages", json=text(), headers=BEARER)
    assert (unavailable.status_code, unavailable.json()["error"]["code"]) == (503, 2)
    proxy = await client.post(f"/{PHONE_ID}/messages", json=text(), headers=BEARER)
    assert (proxy.status_code, proxy.text) == (502, "<html>Bad Gateway</html>")

    assert (await client.post(f"/{PHONE_ID}/messages", json=text(), headers=BEARER)).status_code == 200
    assert [r.outcome for r in graph.sends()] == ["injected"] * 5 + ["accepted"]
    assert len(graph.sent_whatsapp()) == 1 and graph.sent_messenger() == []


async def test_a_dropped_send_is_recorded_but_the_client_gets_no_answer(graph, client):
    graph.drop_next()
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(f"/{PHONE_ID}/messages", json=text(body="lost?"), headers=BEARER)
    [dropped] = graph.sends()
    assert dropped.dropped and dropped.status is None and dropped.body["text"]["body"] == "lost?"
    assert graph.sent_whatsapp() == []

    retried = await client.post(f"/{PHONE_ID}/messages", json=text(body="lost?"), headers=BEARER)
    assert retried.status_code == 200
    assert [s.body["text"]["body"] for s in graph.sent_whatsapp()] == ["lost?"]


async def test_delays_and_latency_slow_sends_down(graph, client):
    graph.delay_next(1, 0.3)
    started = time.monotonic()
    assert (await client.post(f"/{PHONE_ID}/messages", json=text(), headers=BEARER)).status_code == 200
    assert time.monotonic() - started >= 0.3

    with pytest.raises(httpx.ReadTimeout):
        graph.delay_next(1, 1)
        await client.post(f"/{PHONE_ID}/messages", json=text(), headers=BEARER, timeout=0.2)
    await graph.wait_until(lambda: graph.sends()[-1].outcome == "accepted")  # the fake answered, too late


async def test_hundreds_of_concurrent_sends(graph):
    graph.latency_s = 0.05
    # httpx's pool is the slow side here (its connection assignment is quadratic in the pool size):
    # the fake's own records tell whether it held the sends at once
    async with httpx.AsyncClient(
        base_url=graph.base_url, limits=httpx.Limits(max_connections=200), timeout=30
    ) as client:
        responses = await asyncio.gather(
            *(client.post(f"/{PHONE_ID}/messages", json=text(body=str(i)), headers=BEARER) for i in range(200))
        )
    assert all(r.status_code == 200 for r in responses)
    ids = {r.json()["messages"][0]["id"] for r in responses}
    assert len(ids) == 200 and {s.id for s in graph.sent_whatsapp()} == ids
    assert graph.peak_concurrency() >= 100


def test_whatsapp_webhook_payloads_have_the_documented_shape():
    payload = whatsapp_message(PHONE_ID, "16505551234", "Sheena Nelson", text="Does it come in another color?")
    assert payload["object"] == "whatsapp_business_account"
    [change] = payload["entry"][0]["changes"]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["metadata"]["phone_number_id"] == PHONE_ID
    assert value["contacts"] == [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}]
    [message] = value["messages"]
    assert message["from"] == "16505551234" and message["id"].startswith("wamid.")
    assert isinstance(message["timestamp"], str) and message["text"] == {"body": "Does it come in another color?"}

    def only(**kwargs):
        return whatsapp_message(PHONE_ID, "1", "N", **kwargs)["entry"][0]["changes"][0]["value"]["messages"][0]

    document = only(type="document", media_id="77", mime_type="application/pdf", filename="a.pdf", caption="c")
    assert {k: document["document"][k] for k in ("id", "mime_type", "filename", "caption")} == {
        "id": "77",
        "mime_type": "application/pdf",
        "filename": "a.pdf",
        "caption": "c",
    }
    for kind in ("image", "video", "audio", "sticker"):
        assert only(type=kind, media_id="9")[kind]["id"] == "9"
    assert only(type="location", location={"latitude": 1.5, "longitude": 2.5})["location"]["latitude"] == 1.5
    assert only(type="contacts")["contacts"][0]["name"]["formatted_name"]
    assert only(type="interactive", interactive=button_reply("b1", "Yes"))["interactive"] == {
        "type": "button_reply",
        "button_reply": {"id": "b1", "title": "Yes"},
    }
    assert (
        only(type="interactive", interactive=list_reply("r1", "Row", "desc"))["interactive"]["list_reply"]["id"] == "r1"
    )
    quick = only(
        type="button", button={"text": "No", "payload": "NO"}, context={"from": "15550783881", "id": "wamid.T"}
    )
    assert (quick["button"]["payload"], quick["context"]["id"]) == ("NO", "wamid.T")
    unsupported = only(type="unsupported")
    assert unsupported["type"] == "unsupported" and unsupported["errors"][0]["code"] == 131051

    failed = whatsapp_status(
        PHONE_ID, "wamid.X", "failed", "16505551234", errors=[whatsapp_error(131047, "Re-engagement message", "24h")]
    )
    [status] = failed["entry"][0]["changes"][0]["value"]["statuses"]
    assert (status["id"], status["status"], status["recipient_id"]) == ("wamid.X", "failed", "16505551234")
    assert status["errors"][0]["error_data"] == {"details": "24h"} and status["errors"][0]["code"] == 131047
    delivered = whatsapp_status(PHONE_ID, "wamid.X", "delivered", "16505551234", timestamp=1700000000)
    assert delivered["entry"][0]["changes"][0]["value"]["statuses"][0]["timestamp"] == "1700000000"


def test_messenger_webhook_payloads_have_the_documented_shape():
    url = "https://cdn.example.test/a.jpg"
    inbound = messenger_message(
        "PAGE", "PSID", text="hi", attachments=[messenger_attachment("image", url)], timestamp=5
    )
    assert inbound["object"] == "page" and inbound["entry"][0]["id"] == "PAGE"
    [event] = inbound["entry"][0]["messaging"]
    assert (event["sender"], event["recipient"], event["timestamp"]) == ({"id": "PSID"}, {"id": "PAGE"}, 5)
    assert event["message"]["text"] == "hi" and event["message"]["attachments"][0]["payload"]["url"] == url

    [echo] = messenger_message("PAGE", "PSID", text="from the page", is_echo=True)["entry"][0]["messaging"]
    assert (echo["sender"]["id"], echo["recipient"]["id"]) == ("PAGE", "PSID")
    assert echo["message"]["is_echo"] is True and echo["message"]["app_id"] == APP_ID

    [delivery] = messenger_delivery("PAGE", "PSID", 1458668856253, mids=["m_1"])["entry"][0]["messaging"]
    assert delivery["delivery"] == {"mids": ["m_1"], "watermark": 1458668856253}
    [read] = messenger_read("PAGE", "PSID", 1458668856253)["entry"][0]["messaging"]
    assert read["read"] == {"watermark": 1458668856253} and read["sender"]["id"] == "PSID"


async def test_signed_post_signs_the_exact_bytes_it_sends():
    captured: list[httpx.Request] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200)

    payload = whatsapp_message(PHONE_ID, "1", "Jürgen", text="äöå https://example.test/x")
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
        await signed_post(client, "http://hooks.test/whatsapp", payload, "app-secret")
    [request] = captured
    body = request.content
    assert body == encode(payload) and b"\\u00e4\\u00f6\\u00e5" in body and b"https:\\/\\/example.test" in body
    assert json.loads(body) == payload
    expected = "sha256=" + hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert request.headers["x-hub-signature-256"] == expected == sign("app-secret", body)
    assert request.headers["content-type"] == "application/json"
