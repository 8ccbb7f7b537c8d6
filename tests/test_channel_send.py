"""Agents' messages as Meta receives them, and what each answer becomes for the pipeline.

Against the fake Graph API (``tests/fakes/meta_graph.py``, a real HTTP server): each kind of
message on each platform as the fake records it; refusals as Sent / Retry / Failed with
Meta's code; customers' media fetched within a size limit; and no token in any reason.
"""

from __future__ import annotations

from dataclasses import fields

import httpx
import pytest

from api.channels.inbound import Media
from api.channels.messenger import MessengerTransport
from api.channels.whatsapp import WhatsAppTransport
from domain.credentials import MessengerCredentials, WhatsAppCredentials
from domain.delivery import Failed, MessengerTag, Outcome, Outgoing, OutgoingFile, Retry, Sent, TemplateCall
from domain.enums import MessageKind
from tests.fakes.meta_graph import FakeGraphAPI

WA_TOKEN = "EAAWaToken0123456789abcdefghijklmnopqrstuv"
PAGE_TOKEN = "EAAPageToken0123456789abcdefghijklmnopqrs"
WHATSAPP = WhatsAppCredentials("106540352242922", WA_TOKEN, "wa-app-secret", "wa-verify")
MESSENGER = MessengerCredentials("682498302938465", PAGE_TOKEN, "fb-app-secret", "fb-verify")
CUSTOMER = "16505551234"
PSID = "6728843390504393"
PHOTO = OutgoingFile("https://files.example.com/signed/photo.jpg?sig=abc", "image/jpeg", "photo.jpg")
SECOND = OutgoingFile("https://files.example.com/signed/plant.png?sig=def", "image/png", "plant.png")
INVOICE = OutgoingFile("https://files.example.com/signed/invoice.pdf?sig=ghi", "application/pdf", "invoice.pdf")
CALL = OutgoingFile("https://meet.jit.si/imbrace-Xk3v9Qm2", None, "Conference")


@pytest.fixture
async def graph():
    async with FakeGraphAPI(tokens=[WA_TOKEN, PAGE_TOKEN]) as fake:
        yield fake


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
def whatsapp(graph, http):
    return WhatsAppTransport(http, graph.base_url)


@pytest.fixture
def messenger(graph, http):
    return MessengerTransport(http, graph.base_url)


def wa(kind: MessageKind, text: str | None = None, files=(), template=None) -> Outgoing:
    return Outgoing("m1", kind, CUSTOMER, text=text, files=tuple(files), template=template)


def fb(kind: MessageKind, text: str | None = None, files=(), tag=MessengerTag.RESPONSE) -> Outgoing:
    return Outgoing("m1", kind, PSID, text=text, files=tuple(files), messenger_tag=tag)


def reasons(outcome: Outcome) -> str:
    return " ".join(str(getattr(outcome, f.name)) for f in fields(outcome))


# WhatsApp: what the customer gets


async def test_whatsapp_text_goes_to_the_customer_number_with_our_token(graph, whatsapp):
    outcome = await whatsapp.send(WHATSAPP, wa(MessageKind.TEXT, "Yes, it comes in green too."))
    (sent,) = graph.sent_whatsapp()
    assert outcome == Sent(sent.id)
    assert sent.node == WHATSAPP.phone_number_id
    assert sent.request.headers["authorization"] == f"Bearer {WA_TOKEN}"
    assert sent.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "text",
        "text": {"body": "Yes, it comes in green too."},
    }


async def test_whatsapp_text_with_a_link_shows_its_preview(graph, whatsapp):
    await whatsapp.send(WHATSAPP, wa(MessageKind.TEMPLATE, "Track it at https://shop.example.com/t/42"))
    assert graph.sent_whatsapp()[0].body["text"] == {
        "body": "Track it at https://shop.example.com/t/42",
        "preview_url": True,
    }


async def test_whatsapp_conference_link_with_and_without_words(graph, whatsapp):
    await whatsapp.send(WHATSAPP, wa(MessageKind.CONFERENCE_LINK, None, [CALL]))
    await whatsapp.send(WHATSAPP, wa(MessageKind.CONFERENCE_LINK, "Let's talk it through.", [CALL]))
    assert [s.body["text"] for s in graph.sent_whatsapp()] == [
        {"body": f"Join the video call: {CALL.url}", "preview_url": True},
        {"body": f"Let's talk it through.\n\n{CALL.url}", "preview_url": True},
    ]


async def test_whatsapp_images_are_one_message_each_the_words_under_the_first(graph, whatsapp):
    outcome = await whatsapp.send(WHATSAPP, wa(MessageKind.IMAGE, "Both colours", [PHOTO, SECOND]))
    first, second = graph.sent_whatsapp()
    assert outcome == Sent(first.id)
    assert (first.body["type"], first.body["image"]) == ("image", {"link": PHOTO.url, "caption": "Both colours"})
    assert (second.body["type"], second.body["image"]) == ("image", {"link": SECOND.url})


async def test_whatsapp_files_are_documents_with_their_names(graph, whatsapp):
    await whatsapp.send(WHATSAPP, wa(MessageKind.ATTACHMENT, None, [INVOICE]))
    (sent,) = graph.sent_whatsapp()
    assert (sent.body["type"], sent.body["document"]) == ("document", {"link": INVOICE.url, "filename": "invoice.pdf"})


async def test_whatsapp_words_too_long_for_a_caption_go_first_on_their_own(graph, whatsapp):
    long_text = "word " * 300
    await whatsapp.send(WHATSAPP, wa(MessageKind.IMAGE, long_text, [PHOTO]))
    assert [s.body["type"] for s in graph.sent_whatsapp()] == ["text", "image"]
    assert "caption" not in graph.sent_whatsapp()[1].body["image"]


async def test_whatsapp_templates_carry_their_name_language_and_values(graph, whatsapp):
    order = TemplateCall("order_update", "en_US", ("Ann", "#1042"))
    plain = TemplateCall("hello_world", "en_US")
    await whatsapp.send(WHATSAPP, wa(MessageKind.WHATSAPP_TEMPLATE, template=order))
    await whatsapp.send(WHATSAPP, wa(MessageKind.WHATSAPP_TEMPLATE, template=plain))
    assert [s.body["template"] for s in graph.sent_whatsapp()] == [
        {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Ann"}, {"type": "text", "text": "#1042"}]}
            ],
        },
        {"name": "hello_world", "language": {"code": "en_US"}},
    ]


# WhatsApp: refusals


async def test_whatsapp_throttled_with_retry_after_is_retried_no_sooner(graph, whatsapp):
    graph.fail_throttled(retry_after=7)
    outcome = await whatsapp.send(WHATSAPP, wa(MessageKind.TEXT, "hi"))
    assert isinstance(outcome, Retry) and outcome.after_s == 7 and outcome.code == "4"


async def test_whatsapp_rate_limit_codes_are_retried_whatever_the_http_status(graph, whatsapp):
    graph.fail_rate_limited(status=400)
    outcome = await whatsapp.send(WHATSAPP, wa(MessageKind.TEXT, "hi"))
    assert isinstance(outcome, Retry) and outcome.code == "130429"
    assert "throughput" in outcome.reason


async def test_whatsapp_server_errors_are_retried(graph, whatsapp):
    graph.fail_server_error()
    outcome = await whatsapp.send(WHATSAPP, wa(MessageKind.TEXT, "hi"))
    assert isinstance(outcome, Retry) and outcome.code == "131000"
    graph.fail_next(1, 502, body="<html>Bad Gateway</html>")
    assert isinstance(await whatsapp.send(WHATSAPP, wa(MessageKind.TEXT, "hi")), Retry)


async def test_whatsapp_after_24_hours_fails_with_meta_code_and_explanation(graph, whatsapp):
    graph.fail_reengagement()
    outcome = await whatsapp.send(WHATSAPP, wa(MessageKind.TEXT, "Still there?"))
    assert isinstance(outcome, Failed) and outcome.code == "131047"
    assert "more than 24 hours have passed" in outcome.message
    assert graph.sent_whatsapp() == []


async def test_whatsapp_a_dropped_connection_is_retried(graph, whatsapp):
    graph.drop_next()
    outcome = await whatsapp.send(WHATSAPP, wa(MessageKind.TEXT, "hi"))
    assert isinstance(outcome, Retry)
    assert "127.0.0.1" not in outcome.reason


async def test_whatsapp_a_later_file_refused_is_the_outcome(graph, whatsapp):
    """The first image was taken, the second refused: the message failed (a retry would send
    the first again: at least once, never a file silently missing)."""
    graph.fail_next(1, 200, body={"messaging_product": "whatsapp", "messages": [{"id": "wamid.first"}]})
    graph.fail_undeliverable()
    outcome = await whatsapp.send(WHATSAPP, wa(MessageKind.IMAGE, None, [PHOTO, SECOND]))
    assert isinstance(outcome, Failed) and outcome.code == "131026"
    assert [r.body["image"]["link"] for r in graph.sends()] == [PHOTO.url, SECOND.url]


async def test_whatsapp_a_revoked_token_fails_without_ever_naming_it(graph, whatsapp):
    graph.revoke_token(WA_TOKEN)
    outcome = await whatsapp.send(WHATSAPP, wa(MessageKind.TEXT, "hi"))
    assert isinstance(outcome, Failed) and outcome.code == "190"
    assert WA_TOKEN not in reasons(outcome)


async def test_whatsapp_kinds_it_cannot_carry_fail_at_once(graph, whatsapp):
    assert isinstance(await whatsapp.send(WHATSAPP, wa(MessageKind.WHATSAPP_TEMPLATE)), Failed)
    assert isinstance(await whatsapp.send(WHATSAPP, wa(MessageKind.IMAGE, "no file")), Failed)
    assert isinstance(await whatsapp.send(WHATSAPP, wa(MessageKind.TEXT, None)), Failed)
    assert graph.sends() == []


# Messenger: what the person gets


async def test_messenger_text_answers_the_person_with_the_page_token(graph, messenger):
    outcome = await messenger.send(MESSENGER, fb(MessageKind.TEXT, "Yes, it comes in green too."))
    (sent,) = graph.sent_messenger()
    assert outcome == Sent(sent.id)
    assert sent.node == "me" and sent.request.query["access_token"] == PAGE_TOKEN
    assert sent.body == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {"text": "Yes, it comes in green too."},
    }


async def test_messenger_after_24_hours_an_agent_answers_with_the_human_agent_tag(graph, messenger):
    await messenger.send(MESSENGER, fb(MessageKind.TEXT, "Sorry for the wait", tag=MessengerTag.HUMAN_AGENT))
    body = graph.sent_messenger()[0].body
    assert (body["messaging_type"], body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


async def test_messenger_long_text_arrives_in_order_in_pieces_messenger_accepts(graph, messenger):
    paragraphs = [f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 30 for i in range(6)]
    text = "\n".join(paragraphs)
    outcome = await messenger.send(MESSENGER, fb(MessageKind.TEXT, text))
    pieces = [s.body["message"]["text"] for s in graph.sent_messenger()]
    assert len(pieces) > 1 and all(len(p) <= 2000 for p in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())
    assert outcome == Sent(graph.sent_messenger()[0].id)


async def test_messenger_images_and_files_are_attachments_after_the_words(graph, messenger):
    await messenger.send(MESSENGER, fb(MessageKind.IMAGE, "Both colours", [PHOTO, SECOND]))
    await messenger.send(MESSENGER, fb(MessageKind.ATTACHMENT, None, [INVOICE]))
    assert [s.body["message"] for s in graph.sent_messenger()] == [
        {"text": "Both colours"},
        {"attachment": {"type": "image", "payload": {"url": PHOTO.url, "is_reusable": False}}},
        {"attachment": {"type": "image", "payload": {"url": SECOND.url, "is_reusable": False}}},
        {"attachment": {"type": "file", "payload": {"url": INVOICE.url, "is_reusable": False}}},
    ]


async def test_messenger_conference_link(graph, messenger):
    await messenger.send(MESSENGER, fb(MessageKind.CONFERENCE_LINK, None, [CALL]))
    assert graph.sent_messenger()[0].body["message"] == {"text": f"Join the video call: {CALL.url}"}


async def test_messenger_cannot_send_whatsapp_templates(graph, messenger):
    outcome = await messenger.send(MESSENGER, fb(MessageKind.WHATSAPP_TEMPLATE))
    assert outcome == Failed("WhatsApp templates can't be sent on Messenger.")
    assert graph.sends() == []


# Messenger: refusals


async def test_messenger_outside_the_window_fails_with_meta_code(graph, messenger):
    graph.fail_outside_window()
    outcome = await messenger.send(MESSENGER, fb(MessageKind.TEXT, "hello?"))
    assert isinstance(outcome, Failed) and outcome.code == "10"
    assert "outside of allowed window" in outcome.message


async def test_messenger_rate_limits_and_outages_are_retried(graph, messenger):
    graph.fail_throttled(retry_after=30)
    graph.fail_next(1, 400, code=613, message="(#613) Calls to this api have exceeded the rate limit.")
    graph.fail_unavailable()
    graph.drop_next()
    outcomes = [await messenger.send(MESSENGER, fb(MessageKind.TEXT, "hi")) for _ in range(4)]
    assert all(isinstance(o, Retry) for o in outcomes), outcomes
    assert (outcomes[0].after_s, outcomes[1].code, outcomes[2].code) == (30, "613", "2")


async def test_no_reason_ever_names_a_token(graph, whatsapp, messenger):
    """Even when Meta's words (or a proxy's page) repeat the request back."""
    echo = f"Invalid request /me/messages?access_token={PAGE_TOKEN} Authorization: Bearer {WA_TOKEN}"
    outcomes = []
    for transport, credentials, outgoing in ((whatsapp, WHATSAPP, wa), (messenger, MESSENGER, fb)):
        graph.fail_next(1, 400, code=100, message=echo, details=echo)
        graph.fail_next(1, 503, body=echo)
        graph.fail_throttled()
        graph.drop_next()
        for _ in range(4):
            outcomes.append(await transport.send(credentials, outgoing(MessageKind.TEXT, "hi")))
    graph.revoke_token(PAGE_TOKEN)
    outcomes.append(await messenger.send(MESSENGER, fb(MessageKind.TEXT, "hi")))
    assert not any(isinstance(o, Sent) for o in outcomes)
    for outcome in outcomes:
        assert WA_TOKEN not in reasons(outcome) and PAGE_TOKEN not in reasons(outcome)
        assert "http://" not in reasons(outcome)


# media


async def test_whatsapp_media_is_fetched_with_the_bearer_token(graph, whatsapp):
    photo = b"\xff\xd8\xff\xe0" + b"jpeg" * 1000
    media_id = graph.add_media(photo, "image/jpeg")
    assert await whatsapp.fetch_media(WHATSAPP, media_id, max_bytes=1_000_000) == Media(photo, "image/jpeg")
    download = next(r for r in graph.requests if r.kind == "media-download")
    assert download.headers["authorization"] == f"Bearer {WA_TOKEN}"


async def test_whatsapp_media_over_the_limit_is_refused_before_downloading(graph, whatsapp):
    media_id = graph.add_media(b"x" * 5000, "video/mp4")
    outcome = await whatsapp.fetch_media(WHATSAPP, media_id, max_bytes=4999)
    assert isinstance(outcome, Failed) and "too large" in outcome.message
    assert [r.kind for r in graph.requests] == ["node"]


async def test_whatsapp_unknown_media_or_a_media_id_that_is_not_one(graph, whatsapp):
    unknown = await whatsapp.fetch_media(WHATSAPP, "9999999999", max_bytes=1000)
    assert isinstance(unknown, Failed) and unknown.code == "100" and "http" not in unknown.message
    assert isinstance(await whatsapp.fetch_media(WHATSAPP, "../me/messages", max_bytes=1000), Failed)
    assert [r.kind for r in graph.requests] == ["node"]


async def test_messenger_cdn_files_are_fetched_without_the_token(graph, messenger):
    url = graph.add_cdn_file(b"%PDF-1.7 invoice", "application/pdf")
    assert await messenger.fetch_media(MESSENGER, url, max_bytes=1000) == Media(b"%PDF-1.7 invoice", "application/pdf")
    (request,) = graph.requests
    assert "authorization" not in request.headers and "access_token" not in request.query


async def test_messenger_cdn_files_over_the_limit_or_elsewhere_are_refused(graph, messenger):
    url = graph.add_cdn_file(b"x" * 2048, "image/png")
    too_large = await messenger.fetch_media(MESSENGER, url, max_bytes=2047)
    assert isinstance(too_large, Failed) and "too large" in too_large.message
    for elsewhere in ("http://127.0.0.1:1/cdn/x", "https://169.254.169.254/latest/meta-data", "file:///etc/passwd"):
        assert isinstance(await messenger.fetch_media(MESSENGER, elsewhere, max_bytes=2048), Failed)
    assert len(graph.requests) == 1


async def test_a_download_without_a_declared_size_stops_at_the_limit():
    """A server streaming more than it should (no Content-Length) is cut off, not buffered."""
    sent = 0

    async def endless():
        nonlocal sent
        while True:
            sent += 1024
            yield b"x" * 1024

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless(), headers={"content-type": "audio/ogg"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        transport = MessengerTransport(client, "https://graph.facebook.com/v21.0")
        outcome = await transport.fetch_media(MESSENGER, "https://cdn.fbsbx.com/v/voice.ogg", max_bytes=10_000)
    assert isinstance(outcome, Failed) and "too large" in outcome.message
    assert sent <= 11 * 1024


async def test_a_bearer_token_never_follows_a_redirect_to_another_host():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "graph.facebook.com":
            return httpx.Response(200, json={"url": "https://lookaside.fbsbx.com/media/1", "mime_type": "image/png"})
        if request.url.host == "lookaside.fbsbx.com":
            return httpx.Response(302, headers={"location": "https://elsewhere.example.net/copy"})
        return httpx.Response(200, content=b"png", headers={"content-type": "image/png"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        transport = WhatsAppTransport(client, "https://graph.facebook.com/v21.0")
        outcome = await transport.fetch_media(WHATSAPP, "1003383421387256", max_bytes=1000)
    assert outcome == Media(b"png", "image/png")
    assert [r.url.host for r in seen] == ["graph.facebook.com", "lookaside.fbsbx.com", "elsewhere.example.net"]
    assert "authorization" in seen[1].headers and "authorization" not in seen[2].headers


async def test_a_redirect_to_a_private_address_is_not_followed():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "https://10.0.0.8/internal"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        transport = MessengerTransport(client, "https://graph.facebook.com/v21.0")
        outcome = await transport.fetch_media(MESSENGER, "https://cdn.fbsbx.com/v/a.jpg", max_bytes=1000)
    assert isinstance(outcome, Failed) and "10.0.0.8" not in outcome.message


# profiles


async def test_messenger_profile_names_the_person(graph, messenger):
    graph.add_profile(PSID, "Sheena", "Nelson")
    assert await messenger.profile_name(MESSENGER, PSID) == "Sheena Nelson"
    request = graph.requests[-1]
    assert request.query["fields"] == "first_name,last_name" and request.query["access_token"] == PAGE_TOKEN


async def test_messenger_profile_unknown_stays_unknown_and_unreachable_is_retried(graph, messenger, http):
    assert await messenger.profile_name(MESSENGER, "1234567") is None
    assert await messenger.profile_name(MESSENGER, "../me") is None
    unreachable = MessengerTransport(http, "http://127.0.0.1:1/v21.0")
    assert isinstance(await unreachable.profile_name(MESSENGER, PSID), Retry)
