"""Agents writing to customers: text, files, templates, conference links."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from domain import changes
from domain.delivery import TemplateCall
from domain.entities import Attachment, Conversation, Message, MessageTemplate
from domain.enums import (
    ChannelType,
    ErrorCode,
    EventKind,
    MessageKind,
    SenderKind,
    SystemAction,
)
from domain.errors import Refused, invalid
from domain.events import Event
from domain.ports import ConversationStore, EventSink, FileSaver
from domain.status import Thresholds, is_closed, next_transition_at, status_of
from domain.templates import placeholders, render
from domain.usecases.delivery import check_messenger_window, check_wechat_window, deliveries_for
from domain.usecases.lines import write_line
from domain.usecases.organization import check_channel_enabled
from domain.usecases.rooms import load_visible
from domain.validation import clean_line, clean_text, is_id
from domain.visibility import Viewer, is_grab_representative

FILE_KINDS = (MessageKind.ATTACHMENT, MessageKind.IMAGE)
TEMPLATE_KINDS = (MessageKind.TEMPLATE, MessageKind.WHATSAPP_TEMPLATE)
MAX_ATTACHMENTS = 10


class Upload(Protocol):
    """A file the agent attached; the API layer reads it from the multipart request."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class MessageDraft:
    conversation_id: str
    kind: MessageKind
    text: str | None = None
    template_id: str | None = None
    variables: dict[str, Any] | None = None
    uploads: tuple[Upload, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class MessagingSettings:
    max_upload_bytes: int = 25 * 1024 * 1024
    conference_base_url: str = "https://meet.jit.si/"
    whatsapp_window_s: float = 86400


async def send_message(
    store: ConversationStore,
    files: FileSaver,
    events: EventSink,
    viewer: Viewer,
    draft: MessageDraft,
    now: datetime,
    t: Thresholds,
    settings: MessagingSettings,
) -> tuple[Message, Conversation]:
    """Validate everything first, then store: a refused message writes nothing.

    The write order (number, message, then the conversation) is explained below;
    the files of a FILE message are saved before any of them, and an orphan file
    is harmless. A member sends from inside the room; an app (an API key with
    SEND_MESSAGES, checked before this runs) never joins, and sends in any open
    conversation of its teams, as the message's APP sender.
    """
    app = viewer.app is not None
    conversation = await load_visible(store, viewer, draft.conversation_id)
    reengaging = is_closed(conversation, now, t)
    if reengaging:
        check_may_reengage(viewer, conversation, draft.kind)
    elif not app and viewer.member_id not in conversation.participants:
        raise Refused(ErrorCode.NOT_JOINED, "Join the conversation before sending messages.")
    check_kind_fits_channel(draft.kind, conversation.channel_type)
    check_whatsapp_window(conversation, draft.kind, now, settings)
    check_messenger_window(conversation, now)
    check_wechat_window(conversation, now)
    text, template_call = await _compose_text(store, viewer, conversation, draft)
    check_uploads(draft, settings)
    channel = await store.channel(conversation.channel_id)
    if channel is not None:
        check_channel_enabled(channel)
    if reengaging:  # everything checked: the first write opens it with the sender in the room
        conversation = await reengage(store, events, viewer, conversation, now, t)

    attachments = tuple(
        [
            await files.save(
                viewer.org_id,
                conversation.id,
                clean_line(u.filename, "attachments") or "file",
                u.content_type or "application/octet-stream",
                u.data,
            )
            for u in draft.uploads
        ]
    )
    if draft.kind is MessageKind.CONFERENCE_LINK:
        attachments = (Attachment(url=conference_url(settings.conference_base_url), name="Conference"),)

    # Writes, in an order that never shows a reader an answer that is not stored:
    # reserve the reply's number (nothing visible moves), store the reply, then
    # one update says the customer is answered and makes it the last message.
    # A failure in between leaves at most an unused number, or a stored reply the
    # conversation does not mention yet; never a REPLIED conversation without it.
    if app:
        before = await store.take_open_message_seq(conversation.id)
        if before is None:
            raise Refused(ErrorCode.CONVERSATION_CLOSED, "This conversation is closed.")
    else:
        before = await store.take_message_seq(conversation.id, viewer.member_id)
        if before is None:
            raise Refused(ErrorCode.NOT_JOINED, "Join the conversation before sending messages.")
    message = await store.insert_message(
        Message(
            id=store.new_id(),
            org_id=viewer.org_id,
            conversation_id=conversation.id,
            seq=before.message_seq + 1,
            sender_kind=SenderKind.APP if app else SenderKind.MEMBER,
            sender_member_id=None if app else viewer.member_id,
            sender_app_id=viewer.member_id if app else None,
            kind=draft.kind,
            text=text,
            attachments=attachments,
            created_at=now,
            channel_id=conversation.channel_id,
            deliveries=deliveries_for(conversation, channel, now),
            template_call=template_call,
            customer_messages=before.customer_messages,
        ),
        offer=False,
    )
    answered = changes.effect(changes.answer(now, None), conversation)
    answer = changes.answer(now, next_transition_at(answered, t))
    updated = await store.record_member_message(message, answer) or replace(
        changes.effect(answer, conversation), message_seq=message.seq
    )
    updated = replace(updated, last_message=message)
    await events.publish(
        Event(
            kind=EventKind.MESSAGE,
            conversation=updated,
            at=now,
            actor_id=viewer.member_id,
            previous_status=status_of(conversation, now, t),
            message_id=message.id,
            owner_before=conversation.owner_id,
            by_app=app,
        )
    )
    return message, updated


def check_kind_fits_channel(kind: MessageKind, channel: ChannelType) -> None:
    if kind in (MessageKind.NOTE, MessageKind.SYSTEM):
        raise invalid("Notes are added with `addNote`, and only the server writes system lines.", "kind")
    if kind is MessageKind.WHATSAPP_TEMPLATE and channel is not ChannelType.WHATSAPP:
        raise invalid("WhatsApp templates can only be sent on WhatsApp.", "kind")


def check_may_reengage(viewer: Viewer, conversation: Conversation, kind: MessageKind) -> None:
    """A closed conversation takes one message: a member's WhatsApp template on WhatsApp, which
    re-engages the customer (apps never enter rooms, so they never re-engage)."""
    if (
        viewer.app is not None
        or conversation.channel_type is not ChannelType.WHATSAPP
        or kind is not MessageKind.WHATSAPP_TEMPLATE
    ):
        hint = (
            " Send a WHATSAPP_TEMPLATE to re-engage the customer."
            if conversation.channel_type is ChannelType.WHATSAPP and viewer.app is None
            else ""
        )
        raise Refused(ErrorCode.CONVERSATION_CLOSED, "This conversation is closed." + hint)


async def reengage(
    store: ConversationStore,
    events: EventSink,
    viewer: Viewer,
    conversation: Conversation,
    now: datetime,
    t: Thresholds,
) -> Conversation:
    """Open the closed conversation with the viewer alone in the room and nobody waiting, in one
    conditional update that also numbers its history line (:func:`domain.changes.reengage`);
    a GRAB team's representative owns it, as if grabbed (its other representatives lose sight
    of it: the REENGAGED event hides it from them). A customer message or another
    re-engagement landing first makes it fail: CONVERSATION_CHANGED, nothing sent."""
    owner = viewer.member_id if is_grab_representative(viewer, conversation) else None
    opened = changes.effect(changes.reengage(conversation, viewer.member_id, owner, now, None), conversation)
    change = changes.reengage(conversation, viewer.member_id, owner, now, next_transition_at(opened, t))
    updated = await store.change_conversation(conversation.id, changes.numbered(change))
    if updated is None:
        raise Refused(
            ErrorCode.CONVERSATION_CHANGED,
            "It changed while you re-engaged it (the customer may have written): look at it again; nothing was sent.",
        )
    line = await write_line(store, updated, SystemAction.REENGAGED, now, actor=viewer)
    await events.publish(
        Event(
            kind=EventKind.REENGAGED,
            conversation=updated,
            at=now,
            actor_id=viewer.member_id,
            previous_status=status_of(conversation, now, t),
            owner_before=conversation.owner_id,
            line_id=line.id,
        )
    )
    return updated


def check_whatsapp_window(
    conversation: Conversation, kind: MessageKind, now: datetime, settings: MessagingSettings
) -> None:
    """WhatsApp allows free-form messages only within its window (``whatsapp_window_s``, 24 h by
    default) of the customer's last message; a re-engagement doesn't move it."""
    if conversation.channel_type is not ChannelType.WHATSAPP or kind is MessageKind.WHATSAPP_TEMPLATE:
        return
    last = conversation.customer_last_wrote_at
    if last is None or now - last > timedelta(seconds=settings.whatsapp_window_s):
        raise Refused(
            ErrorCode.WHATSAPP_WINDOW_CLOSED,
            f"More than {duration(settings.whatsapp_window_s)} since the customer wrote: only a WhatsApp "
            "template may be sent until they write again.",
            "kind",
        )


def duration(seconds: float) -> str:
    """``seconds`` in the largest whole unit: "24 hours", "90 minutes", "1 second"."""
    for unit, size in (("hour", 3600), ("minute", 60)):  # WhatsApp speaks of "24 hours", not "1 day"
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    shown = f"{int(seconds)}" if float(seconds).is_integer() else f"{seconds:g}"
    return f"{shown} second{'' if shown == '1' else 's'}"


def check_uploads(draft: MessageDraft, settings: MessagingSettings) -> None:
    if draft.kind in FILE_KINDS:
        if not draft.uploads:
            raise invalid("Attach at least one file.", "attachments")
        if len(draft.uploads) > MAX_ATTACHMENTS:
            raise invalid(f"At most {MAX_ATTACHMENTS} files per message.", "attachments")
        if draft.kind is MessageKind.IMAGE and any(
            not (u.content_type or "").startswith("image/") for u in draft.uploads
        ):
            raise invalid("IMAGE messages take image files only.", "attachments")
        if any(len(u.data) > settings.max_upload_bytes for u in draft.uploads):
            raise Refused(
                ErrorCode.PAYLOAD_TOO_LARGE, f"Files are limited to {settings.max_upload_bytes} bytes.", "attachments"
            )
        for u in draft.uploads:  # every name checked before the first file is saved
            clean_line(u.filename, "attachments")
    elif draft.uploads:
        raise invalid(f"{draft.kind.value} messages take no files.", "attachments")


async def _compose_text(
    store: ConversationStore, viewer: Viewer, conversation: Conversation, draft: MessageDraft
) -> tuple[str | None, TemplateCall | None]:
    """The message's text, and for a WhatsApp template the call Meta needs to send it."""
    if draft.kind in TEMPLATE_KINDS:
        if not is_id(draft.template_id):
            raise invalid("Choose a message template.", "templateId")
        template = await store.template(viewer.org_id, draft.template_id)
        if template is None:
            raise Refused(ErrorCode.NOT_FOUND, "No such message template.", "templateId")
        wanted = ChannelType.WHATSAPP if draft.kind is MessageKind.WHATSAPP_TEMPLATE else conversation.channel_type
        if template.channel is not None and template.channel is not wanted:
            raise invalid("This template is for another channel.", "templateId")
        if draft.kind is MessageKind.WHATSAPP_TEMPLATE and template.channel is not ChannelType.WHATSAPP:
            raise invalid("Choose a WhatsApp template.", "templateId")
        variables = _check_variables(draft.variables)
        text = clean_text(render(template.body, variables))
        if draft.kind is MessageKind.WHATSAPP_TEMPLATE:
            return text, whatsapp_call(template, variables)
        return text, None
    required = draft.kind is MessageKind.TEXT
    return clean_text(draft.text, required=required), None


DEFAULT_WHATSAPP_LANGUAGE = "en_US"


def whatsapp_call(template: MessageTemplate, variables: dict[str, Any]) -> TemplateCall:
    """How Meta knows the template: its approved name (the template's own name unless set),
    language, and the body's values in the order their placeholders first appear, which is
    the order of WhatsApp's ``{{1}}``, ``{{2}}``…"""
    return TemplateCall(
        name=template.whatsapp_name or template.name,
        language=template.whatsapp_language or DEFAULT_WHATSAPP_LANGUAGE,
        parameters=tuple(str(variables[name]) for name in placeholders(template.body)),
    )


def _check_variables(variables: Any) -> dict[str, Any]:
    if variables is None:
        return {}
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in variables.items()
    ):
        raise invalid("`variables` must map names to text or numbers.", "variables")
    for value in variables.values():
        # huge integers can't even be turned into text (Python's digit limit)
        if isinstance(value, int) and abs(value) >= 2**63:
            raise invalid("Template numbers must fit in 64 bits.", "variables")
        if isinstance(value, float) and not math.isfinite(value):
            raise invalid("Template numbers must be finite.", "variables")
    return variables


def conference_url(base_url: str) -> str:
    """An unguessable meeting room (128 bits of randomness)."""
    return base_url.rstrip("/") + "/imbrace-" + secrets.token_urlsafe(16)
