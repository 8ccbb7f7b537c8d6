"""What Meta's platforms share: is a webhook really from Meta, the subscription handshake,
the Graph error envelope as words an agent may read, Meta's timestamps, and which media
addresses this server agrees to fetch."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from api.channels.meta import from_unix, graph_error, handshake, may_fetch, signature_matches
from tests.fakes.meta_webhooks import encode, sign, whatsapp_message

SECRET = "6d1ff2f0c7e94b8c9a1c5d3e2f4a6b8c"
# the body of the WhatsApp messages webhook example (docs: webhooks/reference/messages)
BODY = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":'
    b'{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881",'
    b'"phone_number_id":"106540352242922"},"messages":[{"from":"16505551234","id":"wamid.HBgL",'
    b'"timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}}]},'
    b'"field":"messages"}]}]}'
)


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# signature


def test_a_body_signed_with_the_app_secret_is_accepted():
    assert signature_matches(SECRET, BODY, signed(BODY))


def test_a_signature_made_with_another_secret_is_refused():
    assert not signature_matches(SECRET, BODY, signed(BODY, "not-the-app-secret"))


@pytest.mark.parametrize("header", [None, "", "sha256=", "sha256=xyz", "sha256=" + "0" * 63, "garbage"])
def test_a_missing_or_malformed_signature_is_refused(header):
    assert not signature_matches(SECRET, BODY, header)


def test_the_old_sha1_header_format_is_refused():
    sha1 = "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()
    assert not signature_matches(SECRET, BODY, sha1)
    assert not signature_matches(SECRET, BODY, signed(BODY).replace("sha256=", "sha1="))


def test_a_body_changed_after_signing_is_refused():
    tampered = BODY.replace(b"another color", b"another colour")
    assert not signature_matches(SECRET, tampered, signed(BODY))


def test_an_empty_app_secret_verifies_nothing():
    """Anyone can sign with the empty key: a channel without a secret must accept no webhook."""
    assert not signature_matches("", BODY, signed(BODY, ""))


def test_hex_case_does_not_matter():
    assert signature_matches(SECRET, BODY, "sha256=" + signed(BODY).removeprefix("sha256=").upper())


# handshake


def subscribe(token: str = "verify-me", challenge: str = "1158201444") -> dict[str, str]:
    return {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": token}


def test_the_handshake_echoes_the_challenge_for_our_verify_token():
    assert handshake(subscribe(), "verify-me") == "1158201444"


def test_the_handshake_refuses_another_verify_token():
    assert handshake(subscribe(token="guess"), "verify-me") is None
    assert handshake({"hub.mode": "subscribe", "hub.challenge": "1"}, "verify-me") is None


def test_the_handshake_refuses_another_mode():
    assert handshake({**subscribe(), "hub.mode": "unsubscribe"}, "verify-me") is None
    assert handshake({k: v for k, v in subscribe().items() if k != "hub.mode"}, "verify-me") is None


@pytest.mark.parametrize(
    "challenge", ["", "12\r\nSet-Cookie: a=b", "<script>alert(1)</script>", "1" * 201, "abc def", "\x00"]
)
def test_the_handshake_refuses_a_challenge_that_is_not_a_short_plain_token(challenge):
    assert handshake(subscribe(challenge=challenge), "verify-me") is None


def test_a_channel_without_a_verify_token_answers_no_handshake():
    assert handshake(subscribe(token=""), "") is None


# errors


def test_a_graph_error_reads_as_its_code_and_every_explanation_meta_gave():
    body = {
        "error": {
            "message": "(#131047) Re-engagement message",
            "type": "OAuthException",
            "code": 131047,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": "Message failed to send because more than 24 hours have passed since the customer "
                "last replied to this number.",
            },
            "fbtrace_id": "AbCdEfGh",
        }
    }
    code, message = graph_error(body)
    assert code == "131047"
    assert message == (
        "(#131047) Re-engagement message — Message failed to send because more than 24 hours have passed"
        " since the customer last replied to this number."
    )


def test_the_user_message_is_included_and_repeated_words_are_not():
    body = {"error": {"message": "Invalid parameter", "code": 100, "error_user_msg": "Invalid parameter"}}
    assert graph_error(body) == ("100", "Invalid parameter")


def test_links_and_tokens_never_reach_the_stored_reason():
    token = "EAAGm0PX4ZCpsBAKZCabcdefghijklmnopqrstuvwxyz0123"
    body = {
        "error": {
            "message": f"Privacy ToS not accepted. Click https://www.facebook.com/1008/inbox/tos?x=1 ({token})",
            "code": 2,
            "error_user_msg": "see graph.facebook.com/v19.0/me/messages?access_token=secret-page-token",
        }
    }
    code, message = graph_error(body, secrets=("secret-page-token",))
    assert code == "2"
    assert "http" not in message and "facebook.com/1008" not in message
    assert token not in message and "secret-page-token" not in message


@pytest.mark.parametrize(
    "body",
    [None, "Bad Gateway", 502, [], ["error"], {}, {"error": None}, {"error": "nope"}, {"error": []},
     {"error": {"code": True, "message": ["x"]}}, {"error": {"code": "12a", "message": 5}}],
)  # fmt: skip
def test_any_other_body_is_an_unexplained_refusal(body):
    code, message = graph_error(body)
    assert code is None
    assert message == "The provider refused the request without saying why."


def test_a_huge_provider_message_is_bounded():
    code, message = graph_error({"error": {"message": "x" * 100_000, "code": 1}})
    assert code == "1" and len(message) <= 500


# timestamps


def test_whatsapp_seconds_and_messenger_milliseconds_become_utc_moments():
    assert from_unix("1749416383") == datetime(2025, 6, 8, 20, 59, 43, tzinfo=UTC)
    assert from_unix(1458668856253, millis=True) == datetime(2016, 3, 22, 17, 47, 36, 253000, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", [None, "", "soon", "-1", "1e9", True, [], {}, 10**40, float("nan"), 12, "99999999999999"]
)
def test_junk_timestamps_are_no_moment(value):
    assert from_unix(value) is None
    assert from_unix(value, millis=True) is None


# media addresses


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&ext=2&hash=3", True),
        ("https://scontent.xx.fbcdn.net/v/t1.15752-9/photo.jpg?_nc_cat=1", True),
        ("http://127.0.0.1:8765/media/1", True),  # the configured Graph origin itself (a test fake)
        ("http://127.0.0.1:9999/media/1", False),  # same host, another port
        ("http://lookaside.fbsbx.com/attachments/1", False),  # plain http
        ("https://127.0.0.1/admin", False),
        ("https://10.0.0.8/metadata", False),
        ("https://169.254.169.254/latest/meta-data/", False),
        ("https://[::1]/x", False),
        ("https://localhost/x", False),
        ("https://user:pass@lookaside.fbsbx.com/x", False),
        ("file:///etc/passwd", False),
        ("not a url", False),
        ("https://" + "a" * 5000 + ".com/", False),
    ],
)
def test_only_public_https_or_the_graph_origin_is_fetched(url, allowed):
    assert may_fetch(url, "http://127.0.0.1:8765/v21.0") is allowed


def test_a_webhook_signed_as_meta_sends_it_verifies_over_the_raw_bytes_only():
    """Meta signs its escaped serialisation (non-ASCII and ``/`` escaped); the raw body is what counts."""
    payload = whatsapp_message("106540352242922", "16505551234", "Jürgen", text="Grüße / 👋 https://x.example/a")
    body = encode(payload)
    assert signature_matches(SECRET, body, sign(SECRET, body))
    reserialised = json.dumps(json.loads(body), ensure_ascii=False).encode()
    assert not signature_matches(SECRET, reserialised, sign(SECRET, body))
