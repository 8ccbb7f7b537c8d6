"""Mapping between domain values and MongoDB documents.

Timestamps are stored as integer milliseconds since the epoch. Real MongoDB
would take BSON dates as well, but the embedded nx-27017 server turns dates
into strings when an update also uses ``$inc``/``$min``/``$max`` and compares
them wrongly inside ``$facet``; integers behave identically on both.
Fields that are ``None`` are left out of documents (nx-27017 mismatches
explicit nulls inside ``$or``), and cleared with ``$unset``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast, overload

from domain.delivery import TemplateCall
from domain.entities import (
    Attachment,
    Channel,
    Conversation,
    Customer,
    Delivery,
    Location,
    Member,
    Message,
    MessageTemplate,
    Notification,
    Organization,
    ReadMark,
    SystemLine,
    Team,
    TeamMembership,
    WidgetSettings,
)
from domain.enums import (
    Availability,
    ChannelType,
    ClosedReason,
    DeliveryStatus,
    DeliveryVia,
    MessageKind,
    NotificationKind,
    OrgRole,
    SenderKind,
    SystemAction,
    TeamMode,
    TeamRole,
)


@overload
def ms(value: datetime) -> int: ...
@overload
def ms(value: datetime | None) -> int | None: ...
def ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    return int(value.timestamp() * 1000)


# What a stored moment decodes to at most: one document written before input
# was checked (``sentAt`` in year 1 or 9999 with an offset), or by hand, must not
# make every list, lookup and sweep that reads it fail with "year 0 is out of
# range". Clamped, not dropped: the fields the rules need stay set, and adding
# the thresholds (days) to the latest moment still fits a datetime.
EARLIEST_MS = 0
LATEST_MS = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp() * 1000)


def dt(value: Any) -> datetime | None:
    """A stored moment (int ms, or a BSON date from an older writer) as an aware UTC datetime.

    Never raises: out-of-range numbers are clamped to [1970, 9000), anything that
    is not a moment (a string, a boolean, NaN) reads as absent.
    """
    if type(value) is int and EARLIEST_MS <= value <= LATEST_MS:  # what every writer stores: checked first
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, (int, float)) or value != value:
        return None
    clamped = min(max(value, EARLIEST_MS), LATEST_MS)
    return datetime.fromtimestamp(clamped / 1000, tz=UTC)


def stored_dt(value: Any) -> datetime:
    """:func:`dt` of a moment every writer sets (``created_at``, an event's ``at``).

    Typed as present for the entities; like :func:`dt` it never raises, so a
    damaged document still reads (with None there) instead of failing the read.
    """
    return cast(datetime, dt(value))


def compact(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}


def organization(doc: dict) -> Organization:
    return Organization(id=doc["_id"], name=doc["name"], created_at=stored_dt(doc["created_at"]))


def member(doc: dict) -> Member:
    return Member(
        id=doc["_id"],
        org_id=doc["org_id"],
        email=doc["email"],
        name=doc["name"],
        role=OrgRole(doc["role"]),
        created_at=stored_dt(doc["created_at"]),
        availability=Availability.AVAILABLE if doc.get("availability") == "AVAILABLE" else Availability.AWAY,
        online_until=online_until(doc),
        deactivated_at=stored_dt(doc["deactivated_at"]) if doc.get("deactivated_at") else None,
        token_version=doc.get("token_version", 0),
    )


def online_until(doc: dict) -> datetime | None:
    """The latest heartbeat any instance wrote for the member's open connections
    (``online``: instance id -> until when, in ms)."""
    online = doc.get("online")
    found = [v for v in online.values() if isinstance(v, int)] if isinstance(online, dict) else []
    return dt(max(found)) if found else None


def team(doc: dict) -> Team:
    return Team(
        id=doc["_id"],
        org_id=doc["org_id"],
        name=doc["name"],
        mode=TeamMode(doc["mode"]),
        memberships=tuple(TeamMembership(m["member_id"], TeamRole(m["role"])) for m in doc.get("members", [])),
        created_at=dt(doc.get("created_at")),
    )


def channel(doc: dict) -> Channel:
    return Channel(
        id=doc["_id"],
        org_id=doc["org_id"],
        team_id=doc["team_id"],
        type=ChannelType(doc["type"]),
        name=doc["name"],
        created_at=dt(doc.get("created_at")),
        credential_hints=doc.get("credential_hints"),
        widget=widget(doc),
        disabled_at=dt(doc.get("disabled_at")),
        outbound_url=doc.get("outbound_url"),
    )


def widget(doc: dict) -> WidgetSettings | None:
    """A web widget's settings are top-level fields of its channel (``widget_key`` has a unique
    index); ``widget_verified`` says whether the sealed ``widget_secret`` beside it is set."""
    key = doc.get("widget_key")
    if not isinstance(key, str):
        return None
    return WidgetSettings(
        key=key,
        allowed_origins=tuple(doc.get("widget_origins") or ()),
        identity_verification=bool(doc.get("widget_verified")),
    )


def widget_fields(settings: WidgetSettings) -> dict[str, Any]:
    return {
        "widget_key": settings.key,
        "widget_origins": list(settings.allowed_origins),
        "widget_verified": settings.identity_verification,
    }


def customer(doc: dict) -> Customer:
    location = doc.get("location")
    return Customer(
        id=doc["_id"],
        org_id=doc["org_id"],
        channel_id=doc["channel_id"],
        channel_type=ChannelType(doc["channel_type"]),
        external_id=doc["external_id"],
        name=doc.get("name"),
        email=doc.get("email"),
        phone=doc.get("phone"),
        attributes=doc.get("attributes") or {},
        online_until=dt(doc.get("online_until")),
        last_active_at=dt(doc.get("last_active_at")),
        location=location_of(location) if location else None,
        created_at=dt(doc.get("created_at")),
        time_zone=doc.get("time_zone"),
        language=doc.get("language"),
        page_url=doc.get("page_url"),
    )


def location_of(doc: dict) -> Location:
    return Location(doc.get("city"), doc.get("country"), doc.get("country_code"))


def location_doc(location: Location) -> dict[str, Any]:
    return compact({"city": location.city, "country": location.country, "country_code": location.country_code})


def customer_doc(c: Customer) -> dict:
    return compact(
        {
            "_id": c.id,
            "org_id": c.org_id,
            "channel_id": c.channel_id,
            "channel_type": c.channel_type.value,
            "external_id": c.external_id,
            "name": c.name,
            "email": c.email,
            "phone": c.phone,
            "attributes": c.attributes or None,
            "online_until": ms(c.online_until),
            "last_active_at": ms(c.last_active_at),
            "location": location_doc(c.location) if c.location else None,
            "created_at": ms(c.created_at),
            "time_zone": c.time_zone,
            "language": c.language,
            "page_url": c.page_url,
        }
    )


CONVERSATION_TIMES = (
    "customer_online_until",
    "waiting_since",
    "last_customer_message_at",
    "last_message_at",
    "closed_at",
    "created_at",
    "updated_at",
    "next_due_at",
    "reopened_at",
    "customer_wrote_at",
)


def conversation(doc: dict) -> Conversation:
    return Conversation(
        id=doc["_id"],
        org_id=doc["org_id"],
        team_id=doc["team_id"],
        channel_id=doc["channel_id"],
        channel_type=ChannelType(doc["channel_type"]),
        channel_name=doc.get("channel_name", ""),
        customer_id=doc["customer_id"],
        customer_name=doc.get("customer_name"),
        customer_email=doc.get("customer_email"),
        customer_phone=doc.get("customer_phone"),
        participants=tuple(doc.get("participants", ())),
        owner_id=doc.get("owner_id"),
        message_seq=doc.get("message_seq", 0),
        closed_reason=ClosedReason(doc["closed_reason"]) if doc.get("closed_reason") else None,
        announced_status=doc.get("announced_status"),
        last_message=message(doc["last_message"]) if doc.get("last_message") else None,
        customer_messages=doc.get("customer_messages", 0),
        read_by=tuple(doc.get("read_by", ())),
        reads=reads(doc.get("reads")),
        **{name: dt(doc.get(name)) for name in CONVERSATION_TIMES},
    )


def reads(value: Any) -> tuple[ReadMark, ...]:
    """Stored as a map by member id (``{"<member>": {"seq", "n", "at"}}``), so one member's mark
    is raised with ``$max`` on its own paths; ordered by member id."""
    if not isinstance(value, dict):
        return ()
    return tuple(
        ReadMark(member_id=k, seq=v.get("seq", 0), customer_messages=v.get("n", 0), at=stored_dt(v.get("at")))
        for k, v in sorted(value.items())
        if isinstance(v, dict)
    )


def reads_doc(marks: tuple[ReadMark, ...]) -> dict | None:
    return {m.member_id: read_mark_doc(m) for m in marks} or None


def read_mark_doc(mark: ReadMark) -> dict:
    return {"seq": mark.seq, "n": mark.customer_messages, "at": ms(mark.at)}


def conversation_doc(c: Conversation) -> dict:
    return compact(
        {
            "_id": c.id,
            "org_id": c.org_id,
            "team_id": c.team_id,
            "channel_id": c.channel_id,
            "channel_type": c.channel_type.value,
            "channel_name": c.channel_name,
            "customer_id": c.customer_id,
            "customer_name": c.customer_name,
            "customer_email": c.customer_email,
            "customer_phone": c.customer_phone,
            "participants": list(c.participants),
            "owner_id": c.owner_id,
            "message_seq": c.message_seq,
            "closed_reason": c.closed_reason.value if c.closed_reason else None,
            "announced_status": c.announced_status,
            "last_message": last_message_doc(c.last_message) if c.last_message else None,
            "customer_messages": c.customer_messages,
            "read_by": list(c.read_by),
            "reads": reads_doc(c.reads),
            **{name: ms(getattr(c, name)) for name in CONVERSATION_TIMES},
        }
    )


def attachment(doc: dict) -> Attachment:
    return Attachment(
        url=doc["url"],
        mime_type=doc.get("mime_type"),
        name=doc.get("name"),
        size=doc.get("size"),
        file_id=doc.get("file_id"),
        media_ref=doc.get("media_ref"),
    )


def attachment_doc(a: Attachment) -> dict:
    return compact(
        {
            "url": a.url,
            "mime_type": a.mime_type,
            "name": a.name,
            "size": a.size,
            "file_id": a.file_id,
            "media_ref": a.media_ref,
        }
    )


def delivery(doc: dict, via: str | None = None) -> Delivery:
    return Delivery(
        via=DeliveryVia(via or doc["via"]),
        status=DeliveryStatus(doc["status"]),
        attempts=doc.get("attempts", 0),
        last_error=doc.get("last_error"),
        at=dt(doc.get("at")),
        error_code=doc.get("error_code"),
        provider_message_id=doc.get("provider_message_id"),
    )


def delivery_doc(d: Delivery) -> dict:
    return compact(
        {
            "status": d.status.value,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "at": ms(d.at),
            "error_code": d.error_code,
            "provider_message_id": d.provider_message_id,
        }
    )


def deliveries(value: Any) -> tuple[Delivery, ...]:
    """Stored as a map keyed by way (``{"CHANNEL": {...}, "EMAIL": {...}}``) so a provider's
    status report can update one way under a condition on its status with dotted paths
    (nx-27017 has no ``$elemMatch`` or positional ``$``). Messages stored before kept a
    list with ``via`` in each item; both read the same."""
    if isinstance(value, dict):
        return tuple(delivery(d, via) for via, d in value.items())
    return tuple(delivery(d) for d in value or ())


def deliveries_doc(items: tuple[Delivery, ...]) -> dict | None:
    return {d.via.value: delivery_doc(d) for d in items} or None


def template_call(doc: dict | None) -> TemplateCall | None:
    if not doc:
        return None
    return TemplateCall(name=doc["name"], language=doc["language"], parameters=tuple(doc.get("parameters", ())))


def template_call_doc(call: TemplateCall | None) -> dict | None:
    if call is None:
        return None
    return {"name": call.name, "language": call.language, "parameters": list(call.parameters)}


def message(doc: dict) -> Message:
    return Message(
        id=doc["_id"],
        org_id=doc["org_id"],
        conversation_id=doc["conversation_id"],
        seq=doc["seq"],
        sender_kind=SenderKind(doc["sender_kind"]),
        kind=MessageKind(doc["kind"]),
        text=doc.get("text"),
        created_at=stored_dt(doc["created_at"]),
        sender_member_id=doc.get("sender_member_id"),
        sender_customer_id=doc.get("sender_customer_id"),
        sender_app_id=doc.get("sender_app_id"),
        attachments=tuple(attachment(a) for a in doc.get("attachments", ())),
        sent_at=dt(doc.get("sent_at")),
        provider_message_id=doc.get("provider_message_id"),
        channel_id=doc.get("channel_id"),
        deliveries=deliveries(doc.get("deliveries")),
        template_call=template_call(doc.get("template_call")),
        customer_messages=doc.get("customer_messages", 0),
        system=system_line(doc.get("system")),
    )


def system_line(doc: Any) -> SystemLine | None:
    if not isinstance(doc, dict):
        return None
    return SystemLine(action=SystemAction(doc["action"]), actor_id=doc.get("actor_id"), target_id=doc.get("target_id"))


def system_line_doc(line: SystemLine | None) -> dict | None:
    if line is None:
        return None
    return compact({"action": line.action.value, "actor_id": line.actor_id, "target_id": line.target_id})


def message_doc(m: Message) -> dict:
    return compact(
        {
            "_id": m.id,
            "org_id": m.org_id,
            "conversation_id": m.conversation_id,
            "seq": m.seq,
            "sender_kind": m.sender_kind.value,
            "kind": m.kind.value,
            "text": m.text,
            "created_at": ms(m.created_at),
            "sender_member_id": m.sender_member_id,
            "sender_customer_id": m.sender_customer_id,
            "sender_app_id": m.sender_app_id,
            "attachments": [attachment_doc(a) for a in m.attachments] or None,
            "sent_at": ms(m.sent_at),
            "provider_message_id": m.provider_message_id,
            "channel_id": m.channel_id,
            "provider_key": provider_key(m.channel_id, m.provider_message_id) if m.provider_message_id else None,
            "deliveries": deliveries_doc(m.deliveries),
            "template_call": template_call_doc(m.template_call),
            "customer_messages": m.customer_messages or None,
            "system": system_line_doc(m.system),
        }
    )


def last_message_doc(m: Message) -> dict:
    """The copy a conversation keeps of its newest message (``seq`` says which is newer).
    The provider key stays on the message: it is the message's unique index."""
    doc = message_doc(m)
    doc.pop("provider_key", None)
    return doc


def provider_key(channel_id: str | None, provider_message_id: str) -> str:
    """Provider message ids are unique per channel; the key makes retries idempotent."""
    return f"{channel_id}:{provider_message_id}"


def template(doc: dict) -> MessageTemplate:
    return MessageTemplate(
        id=doc["_id"],
        org_id=doc["org_id"],
        name=doc["name"],
        body=doc["body"],
        channel=ChannelType(doc["channel"]) if doc.get("channel") else None,
        created_at=dt(doc.get("created_at")),
        whatsapp_name=doc.get("whatsapp_name"),
        whatsapp_language=doc.get("whatsapp_language"),
    )


def notification(doc: dict) -> Notification:
    return Notification(
        id=doc["_id"],
        org_id=doc["org_id"],
        member_id=doc["member_id"],
        kind=NotificationKind(doc["kind"]),
        conversation_id=doc.get("conversation_id"),
        created_at=stored_dt(doc["created_at"]),
        read=doc.get("read", False),
        webhook_id=doc.get("webhook_id"),
    )


def notification_doc(n: Notification) -> dict:
    return compact(
        {
            "_id": n.id,
            "org_id": n.org_id,
            "member_id": n.member_id,
            "kind": n.kind.value,
            "conversation_id": n.conversation_id,
            "webhook_id": n.webhook_id,
            "created_at": ms(n.created_at),
            "read": n.read,
        }
    )
