"""A fake Meta Graph API (WhatsApp Cloud API and Messenger Platform) for the tests.

It stands in for ``https://graph.facebook.com/v21.0``: a real uvicorn server on a free
loopback port, in the test's own event loop. The server under test is configured with
``graph.base_url`` (``http://127.0.0.1:{port}/v21.0``). It records every request, and can be
told to fail, slow down or drop the next sends, which is what it is for::

    async with FakeGraphAPI(tokens=["wa-token"]) as graph:
        graph.fail_reengagement()
        ...
        assert graph.sent_whatsapp()[0].body["text"]["body"] == "hello"

What it implements, and where the contract was read (the stored copies the search tool
returned; Meta's pages are cited by URL):

- Graph error envelope ``{"error": {"message", "type": "OAuthException", "code",
  "error_subcode"?, "error_data"?, "fbtrace_id"}}``:
  https://developers.facebook.com/docs/graph-api/guides/error-handling. WhatsApp's variant
  carries ``error_data: {"messaging_product": "whatsapp", "details"}``, and ``error_subcode``
  is deprecated (absent from v16.0+ answers):
  https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes
  (its syntax block, also quoted in help.verloop.io's copy). Meta says to branch on ``code``
  and ``details``, not on the HTTP status. Invalid token: ``code`` 190,
  ``"Invalid OAuth access token."`` (the Messenger error-codes page's example,
  https://developers.facebook.com/docs/messenger-platform/error-codes), answered here with 401.
- WhatsApp send, ``POST /{phone-number-id}/messages`` with ``Authorization: Bearer``: body
  ``messaging_product: "whatsapp"``, ``recipient_type: "individual"``, ``to``, ``type`` (text
  when omitted), ``text: {body, preview_url?}``, ``image|video|audio|sticker|document:
  {id | link, caption?}`` (``filename`` on documents), ``template: {name, language: {code},
  components: [{type, parameters: [{type: "text", text}]}]}``; answer ``{"messaging_product":
  "whatsapp", "contacts": [{"input", "wa_id"}], "messages": [{"id": "wamid...."}]}``.
  Read in repos barokatu/wacloudapi-docs README.md and
  humanwood/skills skills/ivangdavila/whatsapp-business-api/messages.md, and the example
  answer https://prismatic.io/docs/example-payloads/whatsapp/actions/sendMessage.json.
- WhatsApp error codes (Meta's error-codes table, as copied by docs.ycloud.com "handle
  whatsapp errors", docs.yaeris.com, help.manychat.com, heltar.com, dualhook.com):
  131047 "Re-engagement message" -> 400 (its ``details`` as real answers carry it, quoted in
  public client code); 131026 "Message Undeliverable" -> 400;
  131000 "Something went wrong" -> 500; 2 "API Service" -> 503; 100 "Invalid parameter" -> 400.
  130429 "Rate limit hit", details "Cloud API message throughput has been reached.": the
  copies disagree on the HTTP status (heltar.com and Meta's example error as reused in public
  client tests: 400 Bad Request; docs.ycloud.com's copy of the table: 429), so
  ``fail_rate_limited`` answers 400 by default and takes ``status=429``. A client must
  classify by ``error.code``, as Meta advises.
- Messenger Send API, ``POST /me/messages`` (or ``/{page-id}/messages``: a body with
  ``recipient`` and no ``messaging_product`` is taken for Messenger) with a page token
  as ``access_token``: ``recipient: {id}``, ``messaging_type`` RESPONSE | UPDATE |
  MESSAGE_TAG (+ ``tag``), ``message: {text}`` or ``message: {attachment: {type: image | audio
  | video | file | template, payload: {url, is_reusable?}}}``; answer ``{"recipient_id",
  "message_id"}``: https://developers.facebook.com/docs/messenger-platform/reference/send-api
  and api-evangelist's facebook-sendmessagerequest schema. Outside the 24 h window: code 10,
  subcode 2018278 (seen in public client code; not in the stored excerpt of Meta's page).
- Media: ``GET /{media-id}`` -> ``{"messaging_product": "whatsapp", "url", "mime_type",
  "sha256", "file_size", "id"}`` (the documented example quotes ``file_size`` as a string,
  docs.fast2sms.com's and docs.kapso.ai's copies; the crate whatsapp-cloud-api
  src/models/media_response.rs reads the same fields). The URL points at lookaside
  (``lookaside.fbsbx.com/whatsapp_business/attachments/?mid=...``), outside the versioned
  Graph path, and needs the same bearer token: here it is ``{origin}/media-download/{id}``.
- Messenger attachment URLs in webhooks are CDN links that need no token (``payload.url``
  in https://developers.facebook.com/docs/messenger-platform/reference/webhook-events/messages):
  here ``{origin}/cdn/{id}``.
- User profile, ``GET /{psid}?fields=first_name,last_name`` ->
  ``{"first_name", "last_name", "id"}``:
  https://developers.facebook.com/documentation/business-messaging/messenger-platform/identity/user-profile.
  Unknown object: code 100, subcode 33, "Unsupported get request. Object with ID ... does not
  exist, ..." (as quoted in repo manoritesandeep/BBM-APPDEV-Ver2.0
  docs/billing/WhatsApp/MESSAGE_STATUS_HANDLING.md).

The inbound side (webhook payloads and their signature) is :mod:`tests.fakes.meta_webhooks`.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.embedded import free_port
from tests.fakes.served import ServedInLoop

GRAPH_VERSION = "v21.0"
_TRANSPORT = "fake_graph.transport"  # scope key: the connection's transport, for drop_next

WHATSAPP_MEDIA_TYPES = ("image", "video", "audio", "sticker", "document")
WHATSAPP_TYPES = {*WHATSAPP_MEDIA_TYPES, "text", "template", "location", "contacts", "interactive", "reaction"}
MESSENGER_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")
MESSENGER_TAGS = (
    "HUMAN_AGENT",
    "ACCOUNT_UPDATE",
    "CONFIRMED_EVENT_UPDATE",
    "POST_PURCHASE_UPDATE",
    "CUSTOMER_FEEDBACK",
)
MESSENGER_ATTACHMENT_TYPES = ("image", "audio", "video", "file", "template")

REENGAGEMENT_DETAILS = (
    "Message failed to send because more than 24 hours have passed since the customer last replied to this number."
)
THROUGHPUT_DETAILS = "Cloud API message throughput has been reached."


def graph_error(
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    details: str | None = None,
    whatsapp: bool = False,
    error_type: str = "OAuthException",
) -> dict[str, Any]:
    """The Graph API error envelope, as the fake answers it."""
    error: dict[str, Any] = {"message": message, "type": error_type, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        product = {"messaging_product": "whatsapp"} if whatsapp else {}
        error["error_data"] = {**product, "details": details}
    error["fbtrace_id"] = secrets.token_urlsafe(16)
    return {"error": error}


@dataclass
class RecordedRequest:
    """One request as the fake received it, and what became of it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # the parsed JSON body; None when empty or not JSON
    raw_body: bytes
    received_at: float  # time.monotonic() on arrival
    kind: str  # "whatsapp" | "messenger" (sends), "node" (GET /{id}), "media-download", "cdn", "unknown"
    outcome: str = "pending"  # "accepted" | "rejected" (auth/validation) | "injected" (fail_next) | "dropped"
    status: int | None = None  # the HTTP status answered; None while pending, and when dropped
    message_id: str | None = None  # the wamid / mid the fake returned
    answered_at: float | None = None  # time.monotonic() when answered (or dropped)

    @property
    def dropped(self) -> bool:
        """The fake received it and closed the connection without any answer."""
        return self.outcome == "dropped"


@dataclass(frozen=True)
class Sent:
    """A send the fake accepted: its body and the id it returned."""

    id: str
    body: dict[str, Any]
    node: str  # the phone number id, the page id, or "me"
    request: RecordedRequest


@dataclass(frozen=True)
class _Failure:
    status: int
    body: dict[str, Any] | str | None
    code: int
    message: str
    subcode: int | None
    details: str | None
    retry_after: float | None


@dataclass(frozen=True)
class _Drop:
    pass


@dataclass
class _Blob:
    data: bytes
    mime_type: str


class _GraphError(Exception):
    def __init__(self, status: int, code: int, message: str, *, subcode: int | None = None, details: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.subcode, self.details = status, code, message, subcode, details


def _invalid(problem: str) -> _GraphError:
    return _GraphError(400, 100, f"(#100) {problem}", details=problem)


def _one_of(name: str, values: Iterable[str]) -> _GraphError:
    return _invalid(f"Param {name} must be one of {{{', '.join(values)}}}")


def _new_id() -> str:
    return str(secrets.randbelow(9 * 10**15) + 10**15)  # Graph ids are numeric strings


@dataclass
class FakeGraphAPI(ServedInLoop):
    """The fake server: ``async with FakeGraphAPI(tokens=[...]) as graph``, or ``start()``/``stop()``."""

    tokens: Iterable[str] = ()
    latency_s: float = 0.0  # added to every send (benchmarks: 0.05)
    requests: list[RecordedRequest] = field(default_factory=list, init=False)  # every request, in arrival order

    def __post_init__(self) -> None:
        self.port = free_port()
        self._tokens: set[str] = set(self.tokens)
        self._media: dict[str, _Blob] = {}
        self._cdn: dict[str, _Blob] = {}
        self._profiles: dict[str, dict[str, str]] = {}
        self._faults: collections.deque[_Failure | _Drop] = collections.deque()
        self._delays: collections.deque[float] = collections.deque()
        self._app = Starlette(
            routes=[
                Route(f"/{GRAPH_VERSION}/{{node}}/messages", self._send, methods=["POST"]),
                Route(f"/{GRAPH_VERSION}/{{node}}", self._node, methods=["GET"]),
                Route("/media-download/{media_id}", self._media_download, methods=["GET"]),
                Route("/cdn/{file_id}", self._cdn_file, methods=["GET"]),
                Route("/{path:path}", self._unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            ]
        )
        self._serve(self._asgi, backlog=4096)

    # -- lifecycle ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.origin}/{GRAPH_VERSION}"

    # -- set-up ------------------------------------------------------------------

    def allow_token(self, token: str) -> None:
        """Accept ``token`` (a WhatsApp access token or a page access token alike)."""
        self._tokens.add(token)

    def revoke_token(self, token: str) -> None:
        self._tokens.discard(token)

    def add_media(self, data: bytes, mime_type: str, *, media_id: str | None = None) -> str:
        """Register WhatsApp media (as an inbound message's ``image.id`` etc.); returns its id."""
        media_id = media_id or _new_id()
        self._media[media_id] = _Blob(data, mime_type)
        return media_id

    def add_cdn_file(self, data: bytes, mime_type: str) -> str:
        """Register a Messenger attachment; returns its public URL (no token needed)."""
        file_id = secrets.token_urlsafe(12)
        self._cdn[file_id] = _Blob(data, mime_type)
        return f"{self.origin}/cdn/{file_id}"

    def add_profile(self, psid: str, first_name: str, last_name: str) -> None:
        self._profiles[psid] = {"first_name": first_name, "last_name": last_name}

    # -- fault injection ---------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int,
        *,
        body: dict[str, Any] | str | None = None,
        code: int | None = None,
        message: str | None = None,
        subcode: int | None = None,
        details: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """The next ``n`` sends (either platform, in arrival order) answer ``status``.

        The body is ``body`` verbatim when given (a str is sent as text/plain, as a proxy's
        error page would be), else a Graph error envelope from ``code``/``message``/``subcode``/
        ``details``. ``retry_after`` adds a ``Retry-After`` header (seconds).
        """
        code = code if code is not None else (2 if status >= 500 else 100)
        message = message or f"(#{code}) Fake failure"
        self._faults.extend([_Failure(status, body, code, message, subcode, details, retry_after)] * n)

    def drop_next(self, n: int = 1) -> None:
        """The next ``n`` sends are read and recorded, then the connection closes with no answer."""
        self._faults.extend([_Drop()] * n)

    def delay_next(self, n: int, seconds: float) -> None:
        """The next ``n`` sends wait ``seconds`` (on top of ``latency_s``) before their outcome.

        Delays and faults are queued separately, so ``delay_next(1, 2); drop_next(1)`` is a
        send that hangs for 2 s and then loses its connection.
        """
        self._delays.extend([seconds] * n)

    def fail_reengagement(self, n: int = 1) -> None:
        """WhatsApp 131047: more than 24 h since the customer last wrote (HTTP 400)."""
        self.fail_next(n, 400, code=131047, message="(#131047) Re-engagement message", details=REENGAGEMENT_DETAILS)

    def fail_undeliverable(self, n: int = 1) -> None:
        """WhatsApp 131026: the message can't be delivered to that number (HTTP 400)."""
        self.fail_next(n, 400, code=131026, message="(#131026) Message Undeliverable", details="Message Undeliverable.")

    def fail_rate_limited(self, n: int = 1, *, status: int = 400, retry_after: float | None = None) -> None:
        """WhatsApp 130429: throughput reached. 400 by default; the documents disagree (see the module doc)."""
        message = "(#130429) Rate limit hit"
        self.fail_next(n, status, code=130429, message=message, details=THROUGHPUT_DETAILS, retry_after=retry_after)

    def fail_throttled(self, n: int = 1, *, retry_after: float = 1) -> None:
        """HTTP 429 with ``Retry-After``: Graph code 4, the app's call rate limit."""
        self.fail_next(n, 429, code=4, message="(#4) Application request limit reached", retry_after=retry_after)

    def fail_server_error(self, n: int = 1) -> None:
        """HTTP 500, WhatsApp 131000 "Something went wrong": temporary, retry."""
        self.fail_next(
            n,
            500,
            code=131000,
            message="(#131000) Something went wrong",
            details="Message failed to send due to an unknown error.",
        )

    def fail_unavailable(self, n: int = 1, *, retry_after: float | None = None) -> None:
        """HTTP 503, Graph code 2 "API Service": temporary downtime or overload, retry."""
        self.fail_next(n, 503, code=2, message="(#2) Service temporarily unavailable", retry_after=retry_after)

    def fail_outside_window(self, n: int = 1) -> None:
        """Messenger code 10 / subcode 2018278: outside the 24 h window without a tag (HTTP 400)."""
        message = "(#10) This message is sent outside of allowed window."
        self.fail_next(n, 400, code=10, subcode=2018278, message=message)

    # -- reading what happened -----------------------------------------------------

    def sent_whatsapp(self) -> list[Sent]:
        """The WhatsApp sends the fake accepted, in arrival order."""
        return self._sent("whatsapp")

    def sent_messenger(self) -> list[Sent]:
        """The Messenger sends the fake accepted, in arrival order."""
        return self._sent("messenger")

    def sends(self) -> list[RecordedRequest]:
        """Every send request received (accepted, rejected, failed or dropped), in arrival order."""
        return [r for r in self.requests if r.kind in ("whatsapp", "messenger")]

    def peak_concurrency(self) -> int:
        """The most sends the fake held at once (received, not yet answered)."""
        edges = sorted(
            [(r.received_at, 1) for r in self.sends()]
            + [(r.answered_at, -1) for r in self.sends() if r.answered_at is not None]
        )
        in_flight = peak = 0
        for _, step in edges:
            in_flight += step
            peak = max(peak, in_flight)
        return peak

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Returns once ``predicate()`` holds; fails the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"fake Graph API: condition not met within {timeout} s"
            await asyncio.sleep(0.01)

    def _sent(self, kind: str) -> list[Sent]:
        return [
            Sent(r.message_id, r.body, r.path.split("/")[2], r)
            for r in self.requests
            if r.kind == kind and r.outcome == "accepted" and r.message_id is not None
        ]

    # -- the server ----------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn's receive is a bound method of its request cycle, which holds the connection's
        # transport: drop_next aborts it to close the connection without any HTTP answer.
        scope[_TRANSPORT] = getattr(getattr(receive, "__self__", None), "transport", None)
        await self._app(scope, receive, send)

    async def _record(self, request: Request, kind: str) -> RecordedRequest:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers=dict(request.headers),
            body=body,
            raw_body=raw,
            received_at=time.monotonic(),
            kind=kind,
        )
        self.requests.append(record)
        return record

    def _authorize(self, request: Request, *, query_token: bool = True) -> None:
        authorization = request.headers.get("authorization", "")
        token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
        if token is None and query_token:
            token = request.query_params.get("access_token")
        if token is None or token not in self._tokens:
            raise _GraphError(401, 190, "Invalid OAuth access token.")

    def _answer(
        self, record: RecordedRequest, outcome: str, response: Response, message_id: str | None = None
    ) -> Response:
        record.outcome, record.status, record.message_id = outcome, response.status_code, message_id
        record.answered_at = time.monotonic()
        return response

    def _error(self, record: RecordedRequest, error: _GraphError, *, whatsapp: bool = False) -> Response:
        body = graph_error(error.code, error.message, subcode=error.subcode, details=error.details, whatsapp=whatsapp)
        headers = {}
        if error.code == 190:
            headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{error.message}"'
        return self._answer(record, "rejected", JSONResponse(body, error.status, headers=headers))

    async def _send(self, request: Request) -> Response:
        record = await self._record(request, "whatsapp")
        # one endpoint for both products: a page's send names a recipient, a phone number's a messaging_product
        is_messenger = request.path_params["node"] == "me" or (
            isinstance(record.body, dict) and "recipient" in record.body and "messaging_product" not in record.body
        )
        if is_messenger:
            record.kind = "messenger"
        try:
            self._authorize(request)
            if not isinstance(record.body, dict):
                raise _invalid("The request body must be a JSON object")
            if is_messenger:
                check_messenger_send(record.body)
            else:
                check_whatsapp_send(record.body)
        except _GraphError as error:
            return self._error(record, error, whatsapp=not is_messenger)
        # the fault is chosen on arrival, so concurrent sends meet them in arrival order
        fault = self._faults.popleft() if self._faults else None
        delay = self.latency_s + (self._delays.popleft() if self._delays else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        if isinstance(fault, _Drop):
            return await self._drop(request, record)
        if isinstance(fault, _Failure):
            return self._answer(record, "injected", self._injected(fault, whatsapp=not is_messenger))
        body = record.body
        if is_messenger:
            recipient_id = body["recipient"]["id"]
            if "message" not in body:  # a sender_action answers with the recipient alone
                return self._answer(record, "accepted", JSONResponse({"recipient_id": recipient_id}))
            mid = "m_" + secrets.token_urlsafe(32)
            answer = {"recipient_id": recipient_id, "message_id": mid}
            return self._answer(record, "accepted", JSONResponse(answer), mid)
        wamid = "wamid." + base64.b64encode(secrets.token_bytes(30)).decode()
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": wamid}],
        }
        return self._answer(record, "accepted", JSONResponse(answer), wamid)

    def _injected(self, fault: _Failure, *, whatsapp: bool) -> Response:
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        if isinstance(fault.body, str):
            return Response(fault.body, fault.status, headers=headers, media_type="text/plain")
        body = fault.body or graph_error(
            fault.code, fault.message, subcode=fault.subcode, details=fault.details, whatsapp=whatsapp
        )
        return JSONResponse(body, fault.status, headers=headers)

    async def _drop(self, request: Request, record: RecordedRequest) -> Response:
        record.outcome, record.answered_at = "dropped", time.monotonic()
        transport = request.scope.get(_TRANSPORT)
        if transport is None:
            raise RuntimeError("drop_next needs uvicorn's connection transport, and found none")
        transport.abort()
        async with asyncio.timeout(5):  # uvicorn notices the lost connection on its next loop turn
            while (await request.receive())["type"] != "http.disconnect":
                pass
        return Response(status_code=204)  # never sent: uvicorn drops what is sent after a disconnect

    async def _node(self, request: Request) -> Response:
        node = request.path_params["node"]
        record = await self._record(request, "node")
        try:
            self._authorize(request)
        except _GraphError as error:
            return self._error(record, error)
        if node in self._media:
            media = self._media[node]
            answer = {
                "messaging_product": "whatsapp",
                "url": f"{self.origin}/media-download/{node}",
                "mime_type": media.mime_type,
                "sha256": hashlib.sha256(media.data).hexdigest(),
                "file_size": str(len(media.data)),
                "id": node,
            }
            return self._answer(record, "accepted", JSONResponse(answer))
        if node in self._profiles:
            fields = request.query_params.get("fields", "first_name,last_name").split(",")
            profile = {name: value for name, value in self._profiles[node].items() if name in fields}
            return self._answer(record, "accepted", JSONResponse({**profile, "id": node}))
        unsupported = (
            f"Unsupported get request. Object with ID '{node}' does not exist, cannot be loaded due to missing "
            "permissions, or does not support this operation. Please read the Graph API documentation at "
            "https://developers.facebook.com/docs/graph-api"
        )
        return self._error(record, _GraphError(400, 100, unsupported, subcode=33))

    async def _media_download(self, request: Request) -> Response:
        record = await self._record(request, "media-download")
        try:
            self._authorize(request, query_token=False)  # lookaside wants the bearer header
        except _GraphError as error:
            return self._error(record, error)
        media = self._media.get(request.path_params["media_id"])
        if media is None:
            return self._answer(record, "rejected", Response("Not Found", 404, media_type="text/plain"))
        return self._answer(record, "accepted", Response(media.data, media_type=media.mime_type))

    async def _cdn_file(self, request: Request) -> Response:
        record = await self._record(request, "cdn")
        blob = self._cdn.get(request.path_params["file_id"])
        if blob is None:
            return self._answer(record, "rejected", Response("Not Found", 404, media_type="text/plain"))
        return self._answer(record, "accepted", Response(blob.data, media_type=blob.mime_type))

    async def _unknown(self, request: Request) -> Response:
        record = await self._record(request, "unknown")
        error = _GraphError(400, 2500, f"Unknown path components: {request.url.path}")
        return self._error(record, error)


# -- request validation: the shapes the real API requires ---------------------------


def _require_str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(f"The parameter {name} is required.")
    return value


def _require_dict(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"The parameter {name} is required.")
    return value


def check_whatsapp_send(body: dict[str, Any]) -> None:
    """Raise the Graph error (code 100) the Cloud API answers for a malformed message."""
    if body.get("messaging_product") != "whatsapp":
        raise _invalid("The parameter messaging_product is required.")
    _require_str(body.get("to"), "to")
    if body.get("recipient_type", "individual") != "individual":
        raise _one_of("recipient_type", ["individual"])
    kind = body.get("type", "text")
    if kind not in WHATSAPP_TYPES:
        raise _one_of("type", sorted(WHATSAPP_TYPES))
    if kind == "contacts":
        if not isinstance(body.get("contacts"), list) or not body["contacts"]:
            raise _invalid("The parameter contacts is required.")
        return
    content = _require_dict(body.get(kind), kind)
    if kind == "text":
        text = _require_str(content.get("body"), "text['body']")
        if len(text) > 4096:
            raise _invalid("Param text['body'] must be at most 4096 characters long.")
    elif kind in WHATSAPP_MEDIA_TYPES:
        if ("id" in content) == ("link" in content):
            raise _invalid(f"Param {kind} must have exactly one of {kind}['id'] or {kind}['link']")
        _require_str(content.get("id", content.get("link")), f"{kind}['id' or 'link']")
        if "caption" in content and kind not in ("image", "video", "document"):
            raise _invalid(f"Param {kind}['caption'] is not allowed for {kind}")
        if "filename" in content and kind != "document":
            raise _invalid(f"Param {kind}['filename'] is not allowed for {kind}")
    elif kind == "template":
        _require_str(content.get("name"), "template['name']")
        language = _require_dict(content.get("language"), "template['language']")
        _require_str(language.get("code"), "template['language']['code']")
        components = content.get("components", [])
        if not isinstance(components, list):
            raise _invalid("Param template['components'] must be a list")
        for i, component in enumerate(components):
            where = f"template['components'][{i}]"
            _require_str(_require_dict(component, where).get("type"), f"{where}['type']")
            parameters = component.get("parameters", [])
            if not isinstance(parameters, list):
                raise _invalid(f"Param {where}['parameters'] must be a list")
            for j, parameter in enumerate(parameters):
                here = f"{where}['parameters'][{j}]"
                ptype = _require_str(_require_dict(parameter, here).get("type"), f"{here}['type']")
                if ptype == "text":
                    _require_str(parameter.get("text"), f"{here}['text']")
                elif ptype not in parameter:
                    raise _invalid(f"The parameter {here}['{ptype}'] is required.")


def check_messenger_send(body: dict[str, Any]) -> None:
    """Raise the Graph error (code 100) the Send API answers for a malformed message."""
    recipient = _require_dict(body.get("recipient"), "recipient")
    _require_str(recipient.get("id"), "recipient['id']")
    if "sender_action" in body:
        return
    messaging_type = body.get("messaging_type")
    if messaging_type not in MESSENGER_TYPES:
        raise _one_of("messaging_type", MESSENGER_TYPES)
    if messaging_type == "MESSAGE_TAG" and body.get("tag") not in MESSENGER_TAGS:
        raise _one_of("tag", MESSENGER_TAGS)
    message = _require_dict(body.get("message"), "message")
    if ("text" in message) == ("attachment" in message):
        raise _invalid("Param message must have exactly one of message['text'] or message['attachment']")
    if "text" in message:
        if len(_require_str(message["text"], "message['text']")) > 2000:
            raise _invalid("Param message['text'] must be at most 2000 characters long.")
        return
    attachment = _require_dict(message["attachment"], "message['attachment']")
    if attachment.get("type") not in MESSENGER_ATTACHMENT_TYPES:
        raise _one_of("message['attachment']['type']", MESSENGER_ATTACHMENT_TYPES)
    payload = _require_dict(attachment.get("payload"), "message['attachment']['payload']")
    if attachment["type"] != "template" and "attachment_id" not in payload:
        _require_str(payload.get("url"), "message['attachment']['payload']['url']")
        if not isinstance(payload.get("is_reusable", False), bool):
            raise _invalid("Param message['attachment']['payload']['is_reusable'] must be a boolean")
