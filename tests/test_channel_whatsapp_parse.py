"""What an agent sees of a WhatsApp webhook: each kind of customer message as the text and
files the inbox shows, delivery statuses as the status shown on the agent's reply, and
nothing at all (never an error) for other numbers, other objects, or hostile shapes.

Payloads follow the examples of Meta's ``messages`` webhook reference
(developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/messages/…).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from api.channels.whatsapp import parse
from domain.enums import DeliveryStatus
from domain.validation import MAX_TEXT_LENGTH, check_string
from tests.fakes import meta_webhooks as fake

PHONE_NUMBER_ID = "106540352242922"

# webhooks/reference/messages: "this webhook describes a text message sent to a business"
TEXT_WEBHOOK = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                        "messages": [
                            {
                                "from": "16505551234",
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                                "timestamp": "1749416383",
                                "type": "text",
                                "text": {"body": "Does it come in another color?"},
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}


def webhook(*messages: dict[str, Any], statuses: list[Any] | None = None, phone_number_id: str = PHONE_NUMBER_ID):
    """The text example's envelope around other ``messages[]`` / ``statuses[]`` items."""
    payload = copy.deepcopy(TEXT_WEBHOOK)
    value = payload["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = phone_number_id
    value["messages"] = list(messages)
    if statuses is not None:
        del value["contacts"]
        value["statuses"] = statuses
    return payload


def message(kind: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {
        "from": "16505551234",
        "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQ4NjBBM0I0OTk1NDk3RjdFQjcA",
        "timestamp": "1750090702",
        "type": kind,
        kind: content,
        **extra,
    }


def only(payload: Any):
    parsed = parse(payload, PHONE_NUMBER_ID)
    assert len(parsed.messages) == 1, parsed
    return parsed.messages[0]


# messages


def test_a_text_message_reaches_the_agent_with_the_customer_name_and_number():
    received = only(TEXT_WEBHOOK)
    assert received.text == "Does it come in another color?"
    assert received.customer.external_id == "16505551234"
    assert received.customer.name == "Sheena Nelson"
    assert received.customer.phone == "+16505551234"
    assert received.provider_message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert received.sent_at == datetime(2025, 6, 8, 20, 59, 43, tzinfo=UTC)
    assert received.attachments == ()


def test_an_image_arrives_as_a_file_waiting_at_meta_with_its_caption():
    image = {
        "caption": "The best succulent ever?",
        "mime_type": "image/jpeg",
        "sha256": "2ecOBcWXtNYvuuh5IKJGQHVDBVxVgLKhAM4xS/BIbmM=",
        "id": "1003383421387256",
        "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1003383421387256",
    }
    received = only(webhook(message("image", image)))
    assert received.text == "The best succulent ever?"
    (attachment,) = received.attachments
    assert attachment.url == ""  # not ours yet: the pipeline copies it
    assert attachment.media_ref == "1003383421387256"
    assert attachment.mime_type == "image/jpeg"


def test_a_document_keeps_its_file_name_and_caption():
    document = {
        "caption": "Lucky Shrub Invoice",
        "filename": "lucky-shrub-invoice.pdf",
        "mime_type": "application/pdf",
        "sha256": "nWHPsLjH4Cqmx/Z4M3lcfvs1dGS3Omd3WmKhsN5iYTc=",
        "id": "1003383421387256",
    }
    received = only(webhook(message("document", document)))
    assert received.text == "Lucky Shrub Invoice"
    (attachment,) = received.attachments
    assert (attachment.name, attachment.mime_type, attachment.media_ref) == (
        "lucky-shrub-invoice.pdf",
        "application/pdf",
        "1003383421387256",
    )


def test_audio_video_and_stickers_are_files():
    audio = {"mime_type": "audio/ogg; codecs=opus", "sha256": "c7b2", "id": "1146240383646433", "voice": True}
    video = {"caption": "unboxing", "mime_type": "video/mp4", "sha256": "a3f1", "id": "1166846181421424"}
    sticker = {"mime_type": "image/webp", "sha256": "4a5b", "id": "1003383421387299", "animated": False}
    voice, clip, sticky = (
        only(webhook(message(k, c))) for k, c in (("audio", audio), ("video", video), ("sticker", sticker))
    )
    assert voice.text is None and voice.attachments[0].mime_type == "audio/ogg"
    assert voice.attachments[0].media_ref == "1146240383646433"
    assert clip.text == "unboxing" and clip.attachments[0].media_ref == "1166846181421424"
    assert sticky.text is None and sticky.attachments[0].mime_type == "image/webp"


def test_a_location_reads_as_the_place_and_a_map_link():
    location = {
        "address": "101 Forest Ave, Palo Alto, CA 94301",
        "latitude": 37.44216251868683,
        "longitude": -122.16153582049394,
        "name": "Philz Coffee",
        "url": "https://www.philzcoffee.com/",
    }
    received = only(webhook(message("location", location)))
    assert received.text == (
        "Shared a location: Philz Coffee, 101 Forest Ave, Palo Alto, CA 94301\n"
        "https://maps.google.com/?q=37.442163,-122.161536"
    )


def test_a_dropped_pin_without_a_name_still_reads_as_a_location():
    received = only(webhook(message("location", {"latitude": 48.8584, "longitude": 2.2945})))
    assert received.text == "Shared a location\nhttps://maps.google.com/?q=48.8584,2.2945"


def test_shared_contacts_read_as_names_and_numbers_one_per_line():
    contacts = [
        {
            "name": {"first_name": "Barbara", "last_name": "Johnson", "formatted_name": "Barbara J. Johnson"},
            "phones": [
                {"phone": "+1 (940) 555-1234", "wa_id": "19405551234", "type": "HOME"},
                {"phone": "+1 (650) 555-1234", "wa_id": "16505551234", "type": "WORK"},
            ],
            "emails": [{"email": "bjohnson@luckyshrub.com", "type": "WORK"}],
        },
        {"name": {"first_name": "Pablo", "formatted_name": "Pablo Morales"}, "phones": []},
    ]
    received = only(webhook(message("contacts", contacts)))
    assert received.text == (
        "Shared contacts:\nBarbara J. Johnson: +1 (940) 555-1234, +1 (650) 555-1234\nPablo Morales"
    )


def test_a_reply_button_tap_reads_as_the_button_title():
    interactive = {"type": "button_reply", "button_reply": {"id": "change-button", "title": "Change"}}
    context = {"from": "15550783881", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBIyQjI4RjA3NEFDN0M2NUMwMEQA"}
    assert only(webhook(message("interactive", interactive, context=context))).text == "Change"


def test_a_list_choice_reads_as_the_row_title_and_description():
    interactive = {
        "type": "list_reply",
        "list_reply": {"id": "priority_express", "title": "Priority Mail Express", "description": "Next Day to 2 Days"},
    }
    assert only(webhook(message("interactive", interactive))).text == "Priority Mail Express\nNext Day to 2 Days"


def test_a_template_quick_reply_reads_as_the_button_text():
    button = {"payload": "Unsubscribe from Promos", "text": "Unsubscribe from Promos"}
    assert only(webhook(message("button", button))).text == "Unsubscribe from Promos"


def test_a_reaction_and_its_removal_are_said_in_words():
    reacted = {"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3NzNEODdBOTRFN0Y5MDI2RQA=", "emoji": "\U0001f44d"}
    removed = {"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3NzNEODdBOTRFN0Y5MDI2RQA="}
    assert only(webhook(message("reaction", reacted))).text == "Reacted \U0001f44d to a message"
    assert only(webhook(message("reaction", removed))).text == "Removed a reaction from a message"


def test_an_unsupported_message_says_what_arrived():
    unsupported = {
        "from": "16505551234",
        "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUM0Mzk3OUMwN0E4MjE5MjNCRAA=",
        "timestamp": "1739321024",
        "errors": [
            {
                "code": 131051,
                "title": "Message type unknown",
                "message": "Message type unknown",
                "error_data": {"details": "Message type is currently not supported."},
            }
        ],
        "type": "unsupported",
        "unsupported": {"type": "edit"},
    }
    assert only(webhook(unsupported)).text == "[Unsupported WhatsApp message: edit]"


def test_the_legacy_unknown_type_and_new_kinds_are_not_dropped_either():
    unknown = {
        "from": "16505551234",
        "id": "wamid.ID",
        "timestamp": "1739321024",
        "errors": [
            {"code": 131051, "details": "Message type is not currently supported", "title": "Unsupported message type"}
        ],
        "type": "unknown",
    }
    order = message("order", {"catalog_id": "1", "product_items": [], "text": "hi"})
    flow = message("interactive", {"type": "nfm_reply", "nfm_reply": {"response_json": "{}", "body": "Sent"}})
    assert only(webhook(unknown)).text == "[Unsupported WhatsApp message: Unsupported message type]"
    assert only(webhook(order)).text == "[Unsupported WhatsApp message: order]"
    assert only(webhook(flow)).text == "[Unsupported WhatsApp message: interactive nfm_reply]"


def test_media_without_an_id_is_said_rather_than_lost():
    assert (
        only(webhook(message("image", {"mime_type": "image/jpeg"}))).text
        == "[WhatsApp image that could not be received]"
    )
    assert only(webhook(message("text", {"body": "   "}))).text == "[Empty WhatsApp text message]"


def test_several_messages_keep_their_order_and_each_sender_its_name():
    payload = webhook(
        message("text", {"body": "first"}),
        {**message("text", {"body": "second"}), "from": "447700900123", "id": "wamid.2"},
    )
    payload["entry"][0]["changes"][0]["value"]["contacts"].append({"profile": {"name": "Ann"}, "wa_id": "447700900123"})
    parsed = parse(payload, PHONE_NUMBER_ID)
    assert [(m.text, m.customer.name) for m in parsed.messages] == [("first", "Sheena Nelson"), ("second", "Ann")]


def test_another_phone_number_or_object_or_field_is_ignored():
    assert parse(TEXT_WEBHOOK, "999999999999999").messages == []
    assert parse(webhook(message("text", {"body": "x"}), phone_number_id="1"), PHONE_NUMBER_ID).messages == []
    assert parse({**TEXT_WEBHOOK, "object": "page"}, PHONE_NUMBER_ID).messages == []
    other_field = copy.deepcopy(TEXT_WEBHOOK)
    other_field["entry"][0]["changes"][0]["field"] = "message_template_status_update"
    assert parse(other_field, PHONE_NUMBER_ID).messages == []
    assert parse(TEXT_WEBHOOK, "").messages == []


# statuses


def status(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA",
        "status": state,
        "timestamp": "1750263773",
        "recipient_id": "16505551234",
        **extra,
    }


def test_sent_delivered_and_read_move_the_reply_status():
    pricing = {"billable": True, "pricing_model": "PMP", "category": "service", "type": "free_customer_service"}
    parsed = parse(
        webhook(statuses=[status("sent", pricing=pricing), status("delivered"), status("read")]), PHONE_NUMBER_ID
    )
    assert [(s.status, s.provider_message_id) for s in parsed.statuses] == [
        (DeliveryStatus.SENT, "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA"),
        (DeliveryStatus.DELIVERED, "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA"),
        (DeliveryStatus.READ, "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA"),
    ]
    assert parsed.statuses[0].at == datetime(2025, 6, 18, 16, 22, 53, tzinfo=UTC)
    assert parsed.messages == []


def test_a_failed_status_carries_meta_code_and_explanation():
    errors = [
        {
            "code": 131049,
            "title": "This message was not delivered to maintain healthy ecosystem engagement.",
            "message": "This message was not delivered to maintain healthy ecosystem engagement.",
            "error_data": {
                "details": "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
            },
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }
    ]
    (failed,) = parse(webhook(statuses=[status("failed", errors=errors)]), PHONE_NUMBER_ID).statuses
    assert failed.status is DeliveryStatus.FAILED
    assert failed.error_code == "131049"
    assert failed.error_message == (
        "This message was not delivered to maintain healthy ecosystem engagement. — "
        "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
    )


def test_statuses_this_inbox_does_not_track_are_ignored():
    parsed = parse(
        webhook(statuses=[status("played"), status("deleted"), status("warning"), status(None)]), PHONE_NUMBER_ID
    )
    assert parsed.statuses == []


# hostile shapes


def test_hostile_shapes_never_raise_and_what_is_kept_is_bounded():
    huge = "x" * 1_000_000
    clipped = webhook(
        message("text", {"body": huge}), message("text", {"body": "a\x00b\ud800c"}), {"type": "text", "from": huge}
    )
    payloads = [
        None,
        1,
        "text",
        [],
        {},
        {"object": "whatsapp_business_account"},
        {"object": "whatsapp_business_account", "entry": {"not": "a list"}},
        {
            "object": "whatsapp_business_account",
            "entry": [None, 1, [], {"changes": "x"}, {"changes": [None, {"value": []}]}],
        },
        webhook(None, 1, "x", [], {}, {"from": ["1"]}, {"from": None, "type": "text"}),
        webhook(
            message("text", None), message("text", []), message("text", {"body": ["hi"]}), message("text", {"body": 5})
        ),
        webhook(
            message("image", {"id": {"$gt": ""}}), message("document", {"id": "1", "filename": ["a"], "mime_type": 3})
        ),
        webhook(message("location", {"latitude": "north", "longitude": None, "name": {}}), message("location", [])),
        webhook(
            message("location", {"latitude": 1e308, "longitude": float("inf")}), message("location", {"latitude": True})
        ),
        webhook(message("contacts", {"name": "x"}), message("contacts", [None, {"name": [], "phones": {"a": 1}}])),
        webhook(
            message("interactive", {"type": ["list_reply"]}),
            message("interactive", {"type": "list_reply", "list_reply": 7}),
        ),
        webhook(message("reaction", {"emoji": {"x": 1}}), message("button", [1]), message(huge, {"body": huge})),
        clipped,
        webhook({**message("text", {"body": "t"}), "timestamp": "-1", "id": ["wamid"]}),
        webhook(
            statuses=[
                None,
                {"status": "read"},
                status("failed", errors="boom"),
                status("failed", errors=[{"code": {}}]),
            ]
        ),
        webhook(statuses=[status("sent", timestamp=10**400), status("read", id={"a": 1}), status(["read"])]),
    ]
    for payload in payloads:
        parsed = parse(payload, PHONE_NUMBER_ID)
        for received in parsed.messages:
            assert received.text or received.attachments
            for value in (
                received.text,
                received.customer.external_id,
                received.customer.name,
                received.provider_message_id,
            ):
                if value is not None:
                    check_string(value, "field", max_length=MAX_TEXT_LENGTH)
    # text clipped with a visible ellipsis, NUL dropped, a lone surrogate replaced, an oversized sender id refused
    texts = [m.text for m in parse(clipped, PHONE_NUMBER_ID).messages]
    assert texts == ["x" * (MAX_TEXT_LENGTH - 1) + "…", "ab\ufffdc"]


WHATSAPP_EXAMPLES = [TEXT_WEBHOOK, webhook(statuses=[status("failed", errors=[{"code": 131026, "title": "x"}])])]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def mutate(payload: Any, path: list[int], replacement: Any) -> Any:
    """``payload`` with one nested value (chosen by ``path``) replaced by ``replacement``."""
    if not path or not isinstance(payload, (dict, list)) or not payload:
        return replacement
    keys = list(payload.keys()) if isinstance(payload, dict) else list(range(len(payload)))
    key = keys[path[0] % len(keys)]
    copied = copy.copy(payload)
    copied[key] = mutate(payload[key], path[1:], replacement)
    return copied


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(WHATSAPP_EXAMPLES), st.lists(st.integers(0, 20), max_size=12), json_values)
def test_any_json_in_place_of_any_part_of_a_real_webhook_never_raises(example, path, replacement):
    payload = json.loads(json.dumps(mutate(example, path, replacement), allow_nan=True))
    parsed = parse(payload, PHONE_NUMBER_ID)
    for received in parsed.messages:
        assert received.text or received.attachments


def test_the_fake_webhooks_other_tests_send_read_the_same_way():
    """The webhook builders of tests/fakes agree with the documented examples above."""

    def text_of(**kwargs: Any) -> str | None:
        return only(fake.whatsapp_message(PHONE_NUMBER_ID, "447700900123", "Ann", **kwargs)).text

    assert text_of(text="hello") == "hello"
    assert text_of(type="location") == "Shared a location: Office, Berlin\nhttps://maps.google.com/?q=52.52,13.405"
    assert text_of(type="contacts") == "Shared a contact:\nAda Lovelace: +15551234567"
    assert text_of(type="interactive", interactive=fake.list_reply("r1", "Express", "Next day")) == "Express\nNext day"
    assert text_of(type="button") == "Yes"
    assert text_of(type="unsupported") == "[Unsupported WhatsApp message: edit]"
    document = only(
        fake.whatsapp_message(PHONE_NUMBER_ID, "447700900123", "Ann", type="document", media_id="77", filename="a.pdf")
    )
    assert (document.customer.name, document.attachments[0].name, document.attachments[0].media_ref) == (
        "Ann",
        "a.pdf",
        "77",
    )
    (failed,) = parse(
        fake.whatsapp_status(PHONE_NUMBER_ID, "wamid.X", "failed", "447700900123"), PHONE_NUMBER_ID
    ).statuses
    assert (failed.status, failed.error_code, failed.error_message) == (
        DeliveryStatus.FAILED,
        "131026",
        "Message undeliverable — Message Undeliverable.",
    )
