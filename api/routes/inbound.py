"""Webhooks a channel adapter calls: customer messages, web-widget presence, and what became of
the replies it was sent (custom adapters with an outbound URL)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from api.routes.body import BodyError, read_json
from domain.entities import Attachment, Location
from domain.enums import DeliveryStatus, ErrorCode
from domain.errors import Refused
from domain.usecases.adapters import MAX_REASON_LENGTH, REPORTABLE, AdapterReport, record_adapter_status
from domain.usecases.inbound import (
    CustomerDetails,
    InboundMessage,
    PresenceUpdate,
    receive_customer_message,
    record_presence,
)
from domain.usecases.onboarding import ingest_key_matches
from domain.validation import MAX_TEXT_LENGTH, check_time, clean_email, clean_phone, is_id, is_well_formed

MAX_ATTACHMENTS = 10


async def inbound_message(request: Request) -> JSONResponse:
    services = request.app.state.services
    now = services.clock()
    channel, inbound, error = await _channel_and_body(request, partial(parse_message, now=now))
    if error:
        return error
    try:
        receipt = await receive_customer_message(
            services.store, services.events, channel, inbound, now, services.settings.thresholds
        )
    except Refused as refused:  # the use case's own checks, made before its first write
        return _refusal(refused)
    return JSONResponse(
        {"conversationId": receipt.conversation_id, "messageId": receipt.message_id, "duplicate": receipt.duplicate},
        status_code=202,
    )


async def presence(request: Request) -> JSONResponse:
    services = request.app.state.services
    channel, update, error = await _channel_and_body(request, parse_presence)
    if error:
        return error
    try:
        customer = await record_presence(
            services.store, services.events, channel, update, services.clock(), services.settings.thresholds
        )
    except Refused as refused:
        return _refusal(refused)
    return JSONResponse({"customerId": customer.id, "online": update.online}, status_code=200)


async def delivery_status(request: Request) -> JSONResponse:
    """A custom adapter's report on one reply it was sent: 200 with where the delivery stands
    (``changed``: whether this report moved it), 404 for no reply of this channel with that id,
    409 for a status behind the one known (statuses only move forward)."""
    services = request.app.state.services
    channel, report, error = await _channel_and_body(request, parse_status_report)
    if error:
        return error
    store = services.store
    result = await record_adapter_status(store.deliveries, store, services.events, channel, report, services.clock())
    if result.current is None:
        return _problem(404, "No reply of this channel has this messageId.")
    if not result.moved and result.current is not report.status:
        return JSONResponse(
            {
                "error": f"The delivery is already {result.current.value}: statuses only move forward.",
                "status": result.current.value,
            },
            status_code=409,
        )
    return JSONResponse(
        {"messageId": report.message_id, "status": result.current.value, "changed": result.moved}, status_code=200
    )


async def _channel_and_body(request: Request, parse):
    """The authenticated channel and the parsed body, or the error response; reads nothing else."""
    channel, error = await _authenticated_channel(request)
    if error:
        return None, None, error
    try:
        payload = await read_json(request, request.app.state.services.settings.max_body_bytes)
        return channel, parse(payload), None
    except BodyError as e:
        return None, None, _problem(e.status, e.detail)


async def _authenticated_channel(request: Request):
    services = request.app.state.services
    channel_id = request.path_params["channel_id"]
    found = await services.store.channel_with_key_hash(channel_id) if is_id(channel_id) else None
    if found is None:
        return None, _problem(404, "No such channel.")
    channel, key_hash = found
    if not ingest_key_matches(request.headers.get("x-channel-key"), key_hash):
        return None, _problem(401, "Wrong or missing X-Channel-Key.")
    return channel, None


def _refusal(refused: Refused) -> JSONResponse:
    """403 for a disabled channel (an adapter should stop sending, not fix the body), else 422."""
    if refused.code is ErrorCode.CHANNEL_DISABLED:
        return JSONResponse({"error": refused.message, "code": refused.code.value}, status_code=403)
    return _problem(422, [{"field": refused.field or "body", "message": refused.message}])


def _problem(status: int, detail: Any) -> JSONResponse:
    if isinstance(detail, list):
        return JSONResponse({"error": "invalid", "fields": detail}, status_code=status)
    return JSONResponse({"error": detail}, status_code=status)


class _Fields:
    """Collects every offending field, so one 422 names them all."""

    def __init__(self) -> None:
        self.problems: list[dict[str, str]] = []

    def fail(self, field: str, message: str) -> None:
        self.problems.append({"field": field, "message": message})

    def text(
        self, data: dict, key: str, path: str, *, max_length: int, required: bool = False, single_line: bool = True
    ) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.fail(path, "is required")
            return None
        if not isinstance(value, str):
            self.fail(path, "must be a string")
            return None
        if not is_well_formed(value):
            self.fail(path, "must be well-formed Unicode (no lone surrogates)")
            return None
        if required and not value.strip():
            self.fail(path, "must not be empty")
        if len(value) > max_length:
            self.fail(path, f"is limited to {max_length} characters")
        if "\x00" in value or (single_line and any(ord(c) < 32 for c in value)):
            self.fail(path, "must not contain control characters")
        return value.strip() if single_line else value

    def raise_if_any(self) -> None:
        if self.problems:
            raise BodyError(422, self.problems)


def parse_message(payload: Any, now: datetime) -> InboundMessage:
    f = _Fields()
    if not isinstance(payload, dict):
        raise BodyError(422, [{"field": "body", "message": "must be a JSON object"}])
    customer = _parse_customer(payload.get("customer"), f, with_details=True)
    text = f.text(payload, "text", "text", max_length=MAX_TEXT_LENGTH, single_line=False)
    attachments = _parse_attachments(payload.get("attachments"), f)
    if not (text and text.strip()) and not attachments:
        f.fail("text", "a message needs text or attachments")
    message_id = f.text(payload, "messageId", "messageId", max_length=200)
    sent_at = _parse_time(payload.get("sentAt"), "sentAt", f, now)
    f.raise_if_any()
    return InboundMessage(
        customer=customer,
        text=text if text and text.strip() else None,
        attachments=attachments,
        provider_message_id=message_id or None,
        sent_at=sent_at,
    )


def parse_presence(payload: Any) -> PresenceUpdate:
    f = _Fields()
    if not isinstance(payload, dict):
        raise BodyError(422, [{"field": "body", "message": "must be a JSON object"}])
    customer = _parse_customer(payload.get("customer"), f, with_details=False)
    online = payload.get("online")
    if not isinstance(online, bool):
        f.fail("online", "must be true or false")
    location = None
    raw = payload.get("location")
    if raw is not None:
        if not isinstance(raw, dict):
            f.fail("location", "must be an object")
        else:
            location = Location(
                city=f.text(raw, "city", "location.city", max_length=100),
                country=f.text(raw, "country", "location.country", max_length=100),
            )
    f.raise_if_any()
    assert isinstance(online, bool)  # else f.fail() above, and raise_if_any() refused the body
    return PresenceUpdate(external_id=customer.external_id, online=online, location=location)


_REPORT_FIELDS = frozenset({"messageId", "status", "reason"})


def parse_status_report(payload: Any) -> AdapterReport:
    """``{messageId, status: SENT|DELIVERED|READ|FAILED, reason?}``, nothing else; ``reason`` with FAILED only."""
    f = _Fields()
    if not isinstance(payload, dict):
        raise BodyError(422, [{"field": "body", "message": "must be a JSON object"}])
    for name in sorted(set(payload) - _REPORT_FIELDS, key=str):
        f.fail(str(name)[:100], "is not a field of a status report (messageId, status, reason)")
    message_id = payload.get("messageId")
    if not isinstance(message_id, str) or not is_id(message_id):
        f.fail("messageId", "must be the messageId of a reply this server sent to the adapter")
    raw = payload.get("status")
    names = [s.value for s in REPORTABLE]
    status = DeliveryStatus(raw) if isinstance(raw, str) and raw in names else None
    if status is None:
        f.fail("status", "must be one of " + ", ".join(names))
    reason = f.text(payload, "reason", "reason", max_length=MAX_REASON_LENGTH)
    if reason is not None and status is not None and status is not DeliveryStatus.FAILED:
        f.fail("reason", "is only given with FAILED")
    f.raise_if_any()
    assert isinstance(message_id, str) and status is not None  # else f.fail() above
    return AdapterReport(message_id=message_id, status=status, reason=reason or None)


def _parse_customer(raw: Any, f: _Fields, *, with_details: bool) -> CustomerDetails:
    if not isinstance(raw, dict):
        f.fail("customer", "must be an object with an externalId")
        return CustomerDetails(external_id="")
    external_id = f.text(raw, "externalId", "customer.externalId", max_length=200, required=True) or ""
    if not with_details:
        return CustomerDetails(external_id=external_id)
    name = f.text(raw, "name", "customer.name", max_length=200)
    email = f.text(raw, "email", "customer.email", max_length=254)
    phone = f.text(raw, "phone", "customer.phone", max_length=25)
    try:
        email = clean_email(email, "customer.email") if email else None
    except Refused as refused:
        f.fail("customer.email", refused.message)
    try:
        phone = clean_phone(phone, "customer.phone") if phone else None
    except Refused as refused:
        f.fail("customer.phone", refused.message)
    return CustomerDetails(external_id=external_id, name=name or None, email=email, phone=phone)


def _parse_attachments(raw: Any, f: _Fields) -> tuple[Attachment, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_ATTACHMENTS:
        f.fail("attachments", f"must be a list of at most {MAX_ATTACHMENTS} objects")
        return ()
    found = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            f.fail(f"attachments[{i}]", "must be an object")
            continue
        url = f.text(item, "url", f"attachments[{i}].url", max_length=2048, required=True)
        if url and not url.startswith(("https://", "http://")):
            f.fail(f"attachments[{i}].url", "must be an http(s) URL")
        found.append(
            Attachment(
                url=url or "",
                mime_type=f.text(item, "mimeType", f"attachments[{i}].mimeType", max_length=100),
                name=f.text(item, "name", f"attachments[{i}].name", max_length=200),
            )
        )
    return tuple(found)


def _parse_time(raw: Any, field: str, f: _Fields, now: datetime) -> datetime | None:
    """An ISO-8601 moment inside the window :func:`domain.validation.check_time` allows."""
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > 40:
        f.fail(field, "must be an ISO-8601 timestamp")
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        f.fail(field, "must be an ISO-8601 timestamp")
        return None
    try:
        return check_time(value if value.tzinfo else value.replace(tzinfo=UTC), field, now)
    except Refused as refused:
        f.fail(field, refused.message)
        return None
