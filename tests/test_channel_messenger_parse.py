"""What an agent sees of a Messenger webhook: each kind of customer message as the text and
files the inbox shows, delivery / read watermarks, and nothing at all (never an error) for the
page's own echoes, other pages, other objects or hostile shapes.

Payloads follow the examples of Meta's webhook event reference
(developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events/…).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from api.channels.messenger import parse
from domain.enums import DeliveryStatus
from domain.validation import MAX_TEXT_LENGTH, check_string
from tests.fakes import meta_webhooks as fake
from tests.test_channel_whatsapp_parse import json_values, mutate

PAGE_ID = "682498302938465"
PSID = "6728843390504393"

# webhook-events/messages: "Text Message", in its page envelope
TEXT_WEBHOOK = {
    "object": "page",
    "entry": [
        {
            "id": "682498302938465",
            "time": 1458692752478,
            "messaging": [
                {
                    "sender": {"id": "6728843390504393"},
                    "recipient": {"id": "682498302938465"},
                    "timestamp": 1458692752478,
                    "message": {
                        "mid": "mid.1457764197618:41d102a3e1ae206a38",
                        "text": "hello, world!",
                        "quick_reply": {"payload": "<DEVELOPER_DEFINED_PAYLOAD>"},
                    },
                }
            ],
        }
    ],
}


def webhook(*events: Any, page_id: str = PAGE_ID) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": page_id, "time": 1518479195594, "messaging": list(events)}]}


def event(**content: Any) -> dict[str, Any]:
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": 1518479195308, **content}


def attachments(*items: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return event(message={"mid": "mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c", "attachments": list(items), **extra})


def only(payload: Any):
    parsed = parse(payload, PAGE_ID)
    assert len(parsed.messages) == 1, parsed
    return parsed.messages[0]


# messages


def test_a_text_message_reaches_the_agent_from_the_person_psid():
    received = only(TEXT_WEBHOOK)
    assert received.text == "hello, world!"  # a quick reply's text is what the person tapped
    assert received.customer.external_id == PSID
    assert received.customer.name is None  # asked of the User Profile API later
    assert received.provider_message_id == "mid.1457764197618:41d102a3e1ae206a38"
    assert received.sent_at == datetime(2016, 3, 23, 0, 25, 52, 478000, tzinfo=UTC)  # milliseconds


def test_an_image_arrives_as_a_file_waiting_on_meta_cdn():
    url = "https://scontent.xx.fbcdn.net/v/t1.15752-9/299548434_n.jpg?_nc_cat=1&oh=00_AT&oe=62F1"
    received = only(webhook(attachments({"type": "image", "payload": {"url": url}})))
    (attachment,) = received.attachments
    assert (attachment.url, attachment.media_ref, attachment.mime_type) == ("", url, "image/jpeg")
    assert received.text is None


def test_video_audio_and_files_are_files_with_a_type_the_inbox_can_show():
    video = "https://video.xx.fbcdn.net/v/t42.3356-2/clip"
    audio = "https://cdn.fbsbx.com/v/t59.3654-21/audioclip-1518479195.mp4"
    document = "https://cdn.fbsbx.com/v/t59.2708-21/12345_Lucky%20Shrub%20invoice.pdf?_nc_cat=104"
    received = only(
        webhook(
            attachments(
                {"type": "video", "payload": {"url": video}},
                {"type": "audio", "payload": {"url": audio}},
                {"type": "file", "payload": {"url": document}},
            )
        )
    )
    assert [(a.mime_type, a.name, a.media_ref) for a in received.attachments] == [
        ("video/*", None, video),
        ("audio/*", None, audio),
        ("application/pdf", "12345_Lucky Shrub invoice.pdf", document),
    ]


def test_a_sticker_is_an_image():
    sticker = "https://scontent.xx.fbcdn.net/v/t39.1997-6/851557_369239266556155_759568595_n.png?_nc_ad=z-m"
    received = only(
        webhook(
            attachments(
                {"type": "image", "payload": {"url": sticker, "sticker_id": 369239263222822}},
                sticker_id=369239263222822,
            )
        )
    )
    assert [(a.mime_type, a.media_ref) for a in received.attachments] == [("image/png", sticker)]


def test_a_location_reads_as_its_title_and_a_map_link():
    location = {
        "title": "Pinned Location",
        "url": "https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.bing.com%2Fmaps",
        "type": "location",
        "payload": {"coordinates": {"lat": 52.520008, "long": 13.404954}},
    }
    received = only(webhook(attachments(location)))
    assert received.text == "Shared a location: Pinned Location\nhttps://maps.google.com/?q=52.520008,13.404954"
    assert received.attachments == ()


def test_a_shared_link_reads_as_its_title_and_address():
    fallback = {
        "title": "Lucky Shrub spring sale",
        "url": "https://www.luckyshrub.com/sale",
        "type": "fallback",
        "payload": None,
    }
    assert (
        only(webhook(attachments(fallback))).text
        == "Shared a link: Lucky Shrub spring sale\nhttps://www.luckyshrub.com/sale"
    )
    assert only(webhook(attachments({"type": "fallback"}))).text == "Shared a link"


def test_templates_and_other_shares_are_described_not_dropped():
    product = {"type": "template", "payload": {"product": {"elements": [{"id": "1", "title": "Succulent"}]}}}
    reel = {
        "type": "ig_reel",
        "payload": {
            "reel_video_id": "1",
            "title": "Watering tips",
            "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1",
        },
    }
    assert only(webhook(attachments(product))).text == "[Messenger template attachment]"
    assert only(webhook(attachments(reel))).text == (
        "[Messenger ig_reel attachment] Watering tips\nhttps://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"
    )


def test_text_and_attachments_together_keep_both():
    url = "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo.png"
    received = only(webhook(attachments({"type": "image", "payload": {"url": url}}, text="Is this the one?")))
    assert received.text == "Is this the one?"
    assert [a.media_ref for a in received.attachments] == [url]


def test_a_get_started_or_button_tap_reads_as_the_button_title():
    postback = event(
        postback={"mid": "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5", "title": "Get Started", "payload": "GET_STARTED"}
    )
    received = only(webhook(postback))
    assert (received.text, received.provider_message_id) == ("Get Started", "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5")


def test_an_attachment_meta_could_not_give_is_said_rather_than_lost():
    no_address = only(webhook(attachments({"type": "image", "payload": {}})))
    not_a_link = only(webhook(attachments({"type": "file", "payload": {"url": "javascript:alert(1)"}})))
    assert (no_address.text, no_address.attachments) == ("[Messenger image that could not be received]", ())
    assert (not_a_link.text, not_a_link.attachments) == ("[Messenger file that could not be received]", ())
    assert only(webhook(event(message={"mid": "m_1"}))).text == "[Empty Messenger message]"


def test_the_page_own_messages_are_not_customer_messages():
    echo = {
        "sender": {"id": PAGE_ID},
        "recipient": {"id": PSID},
        "timestamp": 1457764197627,
        "message": {
            "is_echo": True,
            "app_id": 1517776481860111,
            "metadata": "<DEVELOPER_DEFINED_METADATA_STRING>",
            "mid": "mid.1457764197618:41d102a3e1ae206a38",
            "text": "Thanks for your order!",
        },
    }
    echo_from_another_app = {**echo, "sender": {"id": PSID}}  # an echo is an echo, whoever it names
    assert parse(webhook(echo, echo_from_another_app), PAGE_ID).messages == []


def test_another_page_or_object_is_ignored():
    assert parse(TEXT_WEBHOOK, "1111111111").messages == []
    assert parse({**TEXT_WEBHOOK, "object": "instagram"}, PAGE_ID).messages == []
    assert parse(webhook(event(message={"mid": "m_2", "text": "hi"}), page_id="1"), PAGE_ID).messages == []
    assert parse(TEXT_WEBHOOK, "").messages == []


# watermarks


def test_delivery_and_read_watermarks_say_up_to_when_replies_reached_the_person():
    delivery = {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "delivery": {"mids": ["mid.1458668856218:ed81099e15d3f4f233"], "watermark": 1458668856253},
    }
    read = {
        "sender": {"id": PSID},
        "recipient": {"id": PAGE_ID},
        "timestamp": 1458668856463,
        "read": {"watermark": 1458668856253},
    }
    parsed = parse(webhook(delivery, read), PAGE_ID)
    assert [(w.recipient, w.status, w.up_to) for w in parsed.watermarks] == [
        (PSID, DeliveryStatus.DELIVERED, datetime(2016, 3, 22, 17, 47, 36, 253000, tzinfo=UTC)),
        (PSID, DeliveryStatus.READ, datetime(2016, 3, 22, 17, 47, 36, 253000, tzinfo=UTC)),
    ]
    assert parsed.messages == []


def test_a_watermark_without_a_time_says_nothing():
    junk = [event(delivery={"mids": ["m_1"]}), event(read={"watermark": "soon"}), event(read=[1458668856253])]
    assert parse(webhook(*junk), PAGE_ID).watermarks == []


# hostile shapes


def test_hostile_shapes_never_raise_and_what_is_kept_is_bounded():
    huge = "x" * 1_000_000
    clipped = webhook(
        event(message={"mid": "m_1", "text": huge}), event(message={"mid": "m_2", "text": "a\x00b\ud800c"})
    )
    payloads = [
        None,
        0,
        "page",
        [],
        {},
        {"object": "page"},
        {"object": "page", "entry": "x"},
        {"object": "page", "entry": [None, {"id": PAGE_ID}, {"id": PAGE_ID, "messaging": {"a": 1}}, {"id": [PAGE_ID]}]},
        webhook(None, 1, [], {}, {"sender": "x"}, {"sender": {"id": ["1"]}, "message": {}}, {"sender": {"id": huge}}),
        webhook(event(message=None), event(message=[]), event(message={"text": ["hi"], "mid": {"a": 1}})),
        webhook(
            event(message={"attachments": {"type": "image"}}), event(message={"attachments": [None, 1, {"type": []}]})
        ),
        webhook(
            attachments({"type": "image", "payload": []}),
            attachments({"type": "image", "payload": {"url": ["https://x"]}}),
        ),
        webhook(attachments({"type": "image", "payload": {"url": "https://" + huge}}), attachments({"type": huge})),
        webhook(attachments({"type": "location", "payload": {"coordinates": {"lat": "north", "long": 1e400}}})),
        webhook(attachments({"type": "fallback", "url": ["x"], "title": {"a": 1}, "payload": "x"})),
        webhook(event(message={"quick_reply": {"payload": ["x"]}}), event(message={"is_echo": "yes", "text": "t"})),
        webhook(
            event(postback=[]), event(postback={"title": None}), event(timestamp="yesterday", message={"text": "t"})
        ),
        webhook(event(delivery={"watermark": 10**400}), event(read={"watermark": -5}), event(delivery=None)),
        clipped,
    ]
    for payload in payloads:
        parsed = parse(payload, PAGE_ID)
        for received in parsed.messages:
            assert received.text or received.attachments
            for value in (received.text, received.customer.external_id, received.provider_message_id):
                if value is not None:
                    check_string(value, "field", max_length=MAX_TEXT_LENGTH)
    assert [m.text for m in parse(clipped, PAGE_ID).messages] == ["x" * (MAX_TEXT_LENGTH - 1) + "…", "ab\ufffdc"]


MESSENGER_EXAMPLES = [
    TEXT_WEBHOOK,
    webhook(
        attachments({"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/a.jpg"}}),
        event(read={"watermark": 1458668856253}),
        event(delivery={"mids": ["m_1"], "watermark": 1458668856253}),
    ),
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(MESSENGER_EXAMPLES), st.lists(st.integers(0, 20), max_size=12), json_values)
def test_any_json_in_place_of_any_part_of_a_real_webhook_never_raises(example, path, replacement):
    payload = json.loads(json.dumps(mutate(example, path, replacement), allow_nan=True))
    for received in parse(payload, PAGE_ID).messages:
        assert received.text or received.attachments


def test_nothing_here_mutates_the_payload():
    payload = copy.deepcopy(TEXT_WEBHOOK)
    parse(payload, PAGE_ID)
    assert payload == TEXT_WEBHOOK


def test_the_fake_webhooks_other_tests_send_read_the_same_way():
    """The webhook builders of tests/fakes agree with the documented examples above."""
    url = "https://scontent.xx.fbcdn.net/v/t1.15752-9/a.png"
    received = only(
        fake.messenger_message(PAGE_ID, PSID, text="hi", attachments=[fake.messenger_attachment("image", url)])
    )
    assert (received.text, received.attachments[0].media_ref) == ("hi", url)
    assert parse(fake.messenger_message(PAGE_ID, PSID, text="echo", is_echo=True), PAGE_ID).messages == []
    (delivered,) = parse(fake.messenger_delivery(PAGE_ID, PSID, 1458668856253), PAGE_ID).watermarks
    (read,) = parse(fake.messenger_read(PAGE_ID, PSID, 1458668856253), PAGE_ID).watermarks
    assert (delivered.status, read.status, read.up_to) == (
        DeliveryStatus.DELIVERED,
        DeliveryStatus.READ,
        delivered.up_to,
    )
