"""A fake LINE Messaging API (``api.line.me`` and ``api-data.line.me``) for the tests.

One real uvicorn server on a free loopback port, in the test's own event loop, stands in
for both hosts under two prefixes: the server under test is configured with
``line.api_url`` (``http://127.0.0.1:{port}/api``) and ``line.data_api_url``
(``…/data``). As on LINE, the content endpoint answers on the data host only. It records
every request, remembers retry keys, and can be told to fail, drop or slow down the next
pushes::

    async with FakeLineAPI(tokens=["line-token"]) as line:
        line.fail_rate_limited()
        ...
        assert line.pushes()[0].messages == [{"type": "text", "text": "hello"}]

What it implements, and where the contract was read (LINE's pages by URL; the OpenAPI
files ``messaging-api.yml`` and ``webhook.yml`` in the repository line/line-openapi):

- Push, ``POST /v2/bot/message/push`` with ``Authorization: Bearer {channel access token}``:
  body ``{to, messages[1..5], notificationDisabled?}`` (``PushMessageRequest``); answer 200
  ``{sentMessages: [{id, quoteToken?}]}`` with an ``X-Line-Request-Id`` header
  (https://developers.line.biz/en/reference/messaging-api/#send-push-message,
  #response-headers). Messages checked as documented: ``text`` (non-empty, at most 5,000
  characters), ``image`` (``originalContentUrl`` and ``previewImageUrl``: HTTPS, at most
  2,000 characters), and the other documented types by name only.
- ``X-Line-Retry-Key`` (a UUID; https://developers.line.biz/en/docs/messaging-api/retrying-api-request/):
  a request whose key was accepted before is not executed again but answered 409 with
  ``x-line-accepted-request-id`` (the accepted request's ``X-Line-Request-Id``); the body is
  the error envelope, ``{"message": "The retry key is already accepted", "sentMessages": [...]}``
  (``ErrorResponse`` lists ``sentMessages``; the message text as quoted in public client code
  and in api-evangelist/line conventions/line-conventions.yml). A key that is not a UUID is a 400.
- Errors, ``{message, details?: [{message, property}]}`` without codes
  (https://developers.line.biz/en/reference/messaging-api/#error-responses): 400 "The request body
  has N error(s)" with details; 401 for a missing or unknown token; 404 "Not found" (a
  profile LINE won't give, unknown content); 429 "The API rate limit has been exceeded. Try
  again later." (https://developers.line.biz/en/docs/messaging-api/handling-http-429-errors/: a 429
  sent nothing; LINE gives no Retry-After, which ``fail_next`` can add all the same); 500.
  The wording of the 401 and 500 messages is the fake's own.
- Content, ``GET /v2/bot/message/{messageId}/content`` on the data host with the bearer
  token: the binary with its media type (https://developers.line.biz/en/reference/messaging-api/#get-content);
  :meth:`FakeLineAPI.add_content` can hold a file back with 202 a few times, as a video or
  audio being prepared (#verify-video-or-audio-preparation-status).
- Profile, ``GET /v2/bot/profile/{userId}`` → ``{displayName, userId, language?, pictureUrl?,
  statusMessage?}`` (``UserProfileResponse``; https://developers.line.biz/en/reference/messaging-api/#get-profile).
- ``/external/{id}``: a sender's own server, for ``contentProvider.type: external`` images
  and videos (no token).

The inbound side (webhook payloads and their signature) is :mod:`tests.fakes.line_webhooks`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.embedded import free_port
from tests.serving import start_serving

_TRANSPORT = "fake_line.transport"  # scope key: the connection's transport, for drop_next

MESSAGE_TYPES = ("text", "textV2", "sticker", "image", "video", "audio", "location", "imagemap", "template", "flex")
MAX_MESSAGES = 5
MAX_TEXT_UNITS = 5000
MAX_URL_LENGTH = 2000

RETRY_KEY_ACCEPTED = "The retry key is already accepted"
RATE_LIMITED = "The API rate limit has been exceeded. Try again later."
MONTHLY_LIMIT = "You have reached your monthly limit."
UNAUTHORIZED = "Authentication failed. Confirm that the access token in the authorization header is valid."
NOT_FOUND = "Not found"
SERVER_ERROR = "An error occurred in the server. Try again later."


@dataclass
class RecordedRequest:
    """One request as the fake received it, and what became of it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # the parsed JSON body; None when empty or not JSON
    raw_body: bytes
    received_at: float  # time.monotonic() on arrival
    kind: str  # "push" | "profile" | "content" | "external" | "unknown"
    # "accepted" | "conflict" (409: retry key seen) | "rejected" (auth/validation) | "injected" (fail_next)
    # | "dropped" (no answer; see drop_next) | "pending" (202: content not ready)
    outcome: str = "pending"
    status: int | None = None  # the HTTP status answered; None while pending, and when dropped
    request_id: str | None = None  # the X-Line-Request-Id answered
    answered_at: float | None = None

    @property
    def retry_key(self) -> str | None:
        return self.headers.get("x-line-retry-key")

    @property
    def dropped(self) -> bool:
        return self.outcome == "dropped"


@dataclass(frozen=True)
class Push:
    """A push the fake executed: its messages went to the user (even if the answer was lost)."""

    request_id: str
    to: str
    messages: list[dict[str, Any]]
    retry_key: str | None
    message_ids: list[str]
    request: RecordedRequest


@dataclass(frozen=True)
class _Failure:
    status: int
    body: dict[str, Any] | str
    retry_after: float | None


@dataclass(frozen=True)
class _Drop:
    accepted: bool


@dataclass
class _Blob:
    data: bytes
    mime_type: str
    not_ready: int = 0  # answers 202 this many more times


class _LineError(Exception):
    def __init__(self, status: int, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


def error_body(message: str, details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """LINE's error envelope; ``details`` is left out when empty, as documented."""
    return {"message": message} | ({"details": details} if details else {})


def _invalid(*details: tuple[str, str]) -> _LineError:
    return _LineError(
        400,
        f"The request body has {len(details)} error(s)",
        [{"message": message, "property": prop} for prop, message in details],
    )


def _request_id() -> str:
    return str(uuid.uuid4())


def _utf16_units(text: str) -> int:
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text)


@dataclass
class FakeLineAPI:
    """The fake server: ``async with FakeLineAPI(tokens=[...]) as line``, or ``start()``/``stop()``."""

    tokens: Iterable[str] = ()
    latency_s: float = 0.0  # added to every push (benchmarks: 0.05)
    requests: list[RecordedRequest] = field(default_factory=list, init=False)  # every request, in arrival order

    def __post_init__(self) -> None:
        self.port = free_port()
        self._tokens: set[str] = set(self.tokens)
        self._content: dict[str, _Blob] = {}
        self._external: dict[str, _Blob] = {}
        self._profiles: dict[str, dict[str, str]] = {}
        self._accepted_keys: dict[str, Push] = {}
        self._delivered: list[Push] = []
        self._faults: collections.deque[_Failure | _Drop] = collections.deque()
        self._delays: collections.deque[float] = collections.deque()
        self._app = Starlette(
            routes=[
                Route("/api/v2/bot/message/push", self._push, methods=["POST"]),
                Route("/api/v2/bot/profile/{user_id}", self._profile, methods=["GET"]),
                Route("/data/v2/bot/message/{message_id}/content", self._get_content, methods=["GET"]),
                Route("/external/{file_id}", self._external_file, methods=["GET"]),
                Route("/{path:path}", self._unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            ]
        )
        config = uvicorn.Config(
            self._asgi,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            interface="asgi3",
            lifespan="off",
            proxy_headers=False,
            timeout_keep_alive=120,  # longer than any client's keep-alive
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """Stands in for ``https://api.line.me``."""
        return f"{self.origin}/api"

    @property
    def data_api_url(self) -> str:
        """Stands in for ``https://api-data.line.me``."""
        return f"{self.origin}/data"

    async def start(self) -> FakeLineAPI:
        self._task = await start_serving(self._server)
        return self

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None

    async def __aenter__(self) -> FakeLineAPI:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- set-up ------------------------------------------------------------------

    def allow_token(self, token: str) -> None:
        self._tokens.add(token)

    def revoke_token(self, token: str) -> None:
        self._tokens.discard(token)

    def add_content(self, message_id: str, data: bytes, mime_type: str, *, not_ready: int = 0) -> None:
        """What a user sent in the message ``message_id`` (image, video, audio, file); the first
        ``not_ready`` downloads answer 202, as while LINE prepares a video or audio."""
        self._content[message_id] = _Blob(data, mime_type, not_ready)

    def add_external(self, data: bytes, mime_type: str, *, name: str = "photo.jpg") -> str:
        """A file on a sender's own server (``contentProvider.type: external``); returns its URL."""
        file_id = secrets.token_urlsafe(9)
        self._external[f"{file_id}-{name}"] = _Blob(data, mime_type)
        return f"{self.origin}/external/{file_id}-{name}"

    def add_profile(self, user_id: str, display_name: str, **extra: str) -> None:
        """A user whose profile LINE gives (``language``, ``pictureUrl``, ``statusMessage`` as ``extra``)."""
        self._profiles[user_id] = {"displayName": display_name, "userId": user_id, **extra}

    # -- fault injection ---------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int,
        *,
        message: str | None = None,
        details: list[dict[str, str]] | None = None,
        body: dict[str, Any] | str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """The next ``n`` pushes answer ``status`` without sending anything.

        The body is ``body`` verbatim when given (a str is sent as text/plain, as a proxy's
        error page would be), else LINE's envelope of ``message`` and ``details``.
        ``retry_after`` adds a ``Retry-After`` header (seconds), which LINE itself doesn't send.
        """
        given = body if body is not None else error_body(message or f"Fake failure {status}", details)
        self._faults.extend([_Failure(status, given, retry_after)] * n)

    def fail_rate_limited(self, n: int = 1, *, retry_after: float | None = None) -> None:
        """429: the API rate limit was exceeded (nothing was sent)."""
        self.fail_next(n, 429, message=RATE_LIMITED, retry_after=retry_after)

    def fail_monthly_limit(self, n: int = 1) -> None:
        """429: the channel's monthly message limit was reached."""
        self.fail_next(n, 429, message=MONTHLY_LIMIT)

    def fail_server_error(self, n: int = 1) -> None:
        self.fail_next(n, 500, message=SERVER_ERROR)

    def fail_bad_request(self, n: int = 1, *, message: str, details: list[dict[str, str]] | None = None) -> None:
        """400 with LINE's words, e.g. ``message="The request body has 1 error(s)", details=[...]``."""
        self.fail_next(n, 400, message=message, details=details)

    def drop_next(self, n: int = 1, *, accepted: bool = True) -> None:
        """The next ``n`` pushes lose their answer: the connection closes with no response.

        ``accepted`` (the default, and the case a retry key exists for): LINE executed the push
        and remembers its retry key before the answer was lost, so the user got the message.
        Otherwise the request is lost before LINE executed it.
        """
        self._faults.extend([_Drop(accepted)] * n)

    def delay_next(self, n: int, seconds: float) -> None:
        """The next ``n`` pushes wait ``seconds`` (on top of ``latency_s``) before their outcome
        (queued apart from faults)."""
        self._delays.extend([seconds] * n)

    # -- reading what happened -----------------------------------------------------

    def pushes(self) -> list[Push]:
        """Every push the fake executed, in order: what the users received."""
        return list(self._delivered)

    def push_requests(self) -> list[RecordedRequest]:
        """Every push request received (accepted, conflicting, refused, failed or dropped)."""
        return [r for r in self.requests if r.kind == "push"]

    def of_kind(self, kind: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.kind == kind]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Returns once ``predicate()`` holds; fails the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"fake LINE API: condition not met within {timeout} s"
            await asyncio.sleep(0.01)

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
            headers=dict(request.headers),
            body=body,
            raw_body=raw,
            received_at=time.monotonic(),
            kind=kind,
        )
        self.requests.append(record)
        return record

    def _answer(self, record: RecordedRequest, outcome: str, response: Response) -> Response:
        record.outcome, record.status = outcome, response.status_code
        record.request_id = record.request_id or _request_id()
        record.answered_at = time.monotonic()
        response.headers["x-line-request-id"] = record.request_id
        return response

    def _error(self, record: RecordedRequest, error: _LineError) -> Response:
        return self._answer(record, "rejected", JSONResponse(error_body(error.message, error.details), error.status))

    def _authorize(self, request: Request) -> None:
        authorization = request.headers.get("authorization", "")
        token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
        if token is None or token not in self._tokens:
            raise _LineError(401, UNAUTHORIZED)

    async def _push(self, request: Request) -> Response:
        record = await self._record(request, "push")
        try:
            self._authorize(request)
            key = record.retry_key
            if key is not None:
                try:
                    uuid.UUID(key)
                except ValueError:
                    raise _LineError(400, "The value for the 'X-Line-Retry-Key' header is invalid") from None
            check_push(record.body)
        except _LineError as error:
            return self._error(record, error)
        if key is not None and key in self._accepted_keys:
            earlier = self._accepted_keys[key]
            body = {"message": RETRY_KEY_ACCEPTED, "sentMessages": [{"id": i} for i in earlier.message_ids]}
            response = JSONResponse(body, 409, headers={"x-line-accepted-request-id": earlier.request_id})
            return self._answer(record, "conflict", response)
        # the fault is chosen on arrival, so concurrent pushes meet them in arrival order
        fault = self._faults.popleft() if self._faults else None
        delay = self.latency_s + (self._delays.popleft() if self._delays else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        if isinstance(fault, _Failure):
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            if isinstance(fault.body, str):
                failed: Response = Response(fault.body, fault.status, headers=headers, media_type="text/plain")
            else:
                failed = JSONResponse(fault.body, fault.status, headers=headers)
            return self._answer(record, "injected", failed)
        if isinstance(fault, _Drop):
            if fault.accepted:
                self._execute(record)
            return await self._drop(request, record)
        push = self._execute(record)
        return self._answer(record, "accepted", JSONResponse({"sentMessages": [{"id": i} for i in push.message_ids]}))

    def _execute(self, record: RecordedRequest) -> Push:
        """The push goes out: the user gets the messages, and the retry key is remembered."""
        record.request_id = _request_id()
        body = record.body
        push = Push(
            request_id=record.request_id,
            to=body["to"],
            messages=body["messages"],
            retry_key=record.retry_key,
            message_ids=[str(secrets.randbelow(9 * 10**17) + 10**17) for _ in body["messages"]],
            request=record,
        )
        self._delivered.append(push)
        if push.retry_key is not None:
            self._accepted_keys[push.retry_key] = push
        return push

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

    async def _profile(self, request: Request) -> Response:
        record = await self._record(request, "profile")
        try:
            self._authorize(request)
        except _LineError as error:
            return self._error(record, error)
        profile = self._profiles.get(request.path_params["user_id"])
        if profile is None:
            return self._error(record, _LineError(404, NOT_FOUND))
        return self._answer(record, "accepted", JSONResponse(profile))

    async def _get_content(self, request: Request) -> Response:
        record = await self._record(request, "content")
        try:
            self._authorize(request)
        except _LineError as error:
            return self._error(record, error)
        blob = self._content.get(request.path_params["message_id"])
        if blob is None:
            return self._error(record, _LineError(404, NOT_FOUND))
        if blob.not_ready > 0:
            blob.not_ready -= 1
            return self._answer(record, "pending", Response(status_code=202))
        return self._answer(record, "accepted", Response(blob.data, media_type=blob.mime_type))

    async def _external_file(self, request: Request) -> Response:
        record = await self._record(request, "external")
        blob = self._external.get(request.path_params["file_id"])
        if blob is None:
            return self._answer(record, "rejected", Response("Not Found", 404, media_type="text/plain"))
        return self._answer(record, "accepted", Response(blob.data, media_type=blob.mime_type))

    async def _unknown(self, request: Request) -> Response:
        record = await self._record(request, "unknown")
        return self._error(record, _LineError(404, NOT_FOUND))


# -- request validation: the shapes the real API requires ---------------------------


def check_push(body: Any) -> None:
    """Raise the 400 LINE answers for a malformed push request."""
    if not isinstance(body, dict):
        raise _invalid(("", "The request body must be a JSON object"))
    problems: list[tuple[str, str]] = []
    if not isinstance(body.get("to"), str) or not body["to"]:
        problems.append(("to", "May not be empty"))
    messages = body.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        problems.append(("messages", f"Size must be between 1 and {MAX_MESSAGES}"))
        messages = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("type") not in MESSAGE_TYPES:
            problems.append((f"{where}.type", f"Must be one of the following values: [{', '.join(MESSAGE_TYPES)}]"))
        elif message["type"] == "text":
            text = message.get("text")
            if not isinstance(text, str) or not text:
                problems.append((f"{where}.text", "May not be empty"))
            elif _utf16_units(text) > MAX_TEXT_UNITS:
                problems.append((f"{where}.text", f"Length must be between 0 and {MAX_TEXT_UNITS}"))
        elif message["type"] == "image":
            for name in ("originalContentUrl", "previewImageUrl"):
                url = message.get(name)
                if not isinstance(url, str) or not url:
                    problems.append((f"{where}.{name}", "May not be empty"))
                elif not url.startswith("https://"):
                    problems.append((f"{where}.{name}", "Must be HTTPS"))
                elif len(url) > MAX_URL_LENGTH:
                    problems.append((f"{where}.{name}", f"Length must be between 0 and {MAX_URL_LENGTH}"))
    if problems:
        raise _invalid(*problems)
