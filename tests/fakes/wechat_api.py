"""A fake WeChat API (``https://api.weixin.qq.com``) for the tests.

A real uvicorn server on a free loopback port, in the test's own event loop; the server
under test is configured with ``IMBRACE_WECHAT_API_URL=fake.base_url``. It records every
request, and can be told to retire tokens, close a follower's window or be busy::

    async with FakeWeChatAPI(apps={"wx…": "secret"}) as wechat:
        wechat.expire_all()            # the next call with a current token answers 40001
        ...
        assert wechat.sent()[0].body["text"]["content"] == "hello"

What it implements, and where the contract was read (developers.weixin.qq.com pages as the
search tool returned them; the module doc of :mod:`api.channels.wechat` lists them too):

- ``GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`` →
  ``{"access_token", "expires_in": 7200}`` (Get_access_token.html). Each fetch issues a new
  token and leaves the previous ones valid five more minutes ("both new and old access_token
  values are available within five minutes"). Errors: 40002 invalid grant_type, 40013
  "invalid appid", 40125 "invalid appsecret" (the wording of real answers quoted on
  developers.weixin.qq.com/community). Answered with HTTP 200, as WeChat answers its errors.
- Any call's token: missing → 41001 "access_token missing"; unknown or retired →
  40001 "invalid credential, access_token is invalid or not latest"; past its time →
  42001 "access_token expired" (Global_Return_Code.html; 40001's text as getMedia's error
  table words it).
- ``POST /cgi-bin/message/custom/send?access_token=`` with ``{"touser", "msgtype", "text":
  {"content"}}`` or ``"image": {"media_id"}`` → ``{"errcode": 0, "errmsg": "ok"}``
  (api_sendcustommessage). A body with ``\\uXXXX`` escapes is refused with 40033, "invalid
  charset. please check your request, if include \\uxxxx will create fail!" (global code
  40033, "不合法的请求字符,不能包含\\uxxxx格式的字符"); 44004 empty content; 40003 invalid
  openid; 40007 invalid media_id; 40008 invalid message type. 45015 "response out of time
  limit or subscription is canceled" (its wording in answers quoted on the community
  forum) for a follower whose window :meth:`close_window` closed; -1 "system error" while
  :meth:`busy`; any code once with :meth:`fail_next`.
- ``POST /cgi-bin/media/upload?access_token=&type=image`` with the multipart field ``media``
  → ``{"type", "media_id", "created_at"}`` (api_uploadtempmedia); 40004 invalid media type,
  41005 media data missing.
- ``GET /cgi-bin/media/get?access_token=&media_id=`` → the file with its Content-Type and
  ``Content-disposition: attachment; filename="MEDIA_ID.jpg"``, ``{"video_url"}`` for a video,
  ``{"errcode": 40007, "errmsg": "invalid media_id"}`` for an unknown id (api_getmedia).
  JSON answers carry ``Content-Type: application/json; encoding=utf-8``, as a raw answer of
  WeChat's quoted on the community forum shows (a 40164 "invalid ip …, not in whitelist").

The inbound side (XML pushes and their signature) is :mod:`tests.fakes.wechat_webhooks`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.embedded import free_port
from tests.serving import start_serving

TOKEN_OVERLAP_S = 300  # an old token stays valid this long after a new one is fetched
MESSAGE_TYPES = ("text", "image", "voice", "video", "music", "news", "mpnews", "msgmenu", "wxcard", "miniprogrampage")
MEDIA_TYPES = ("image", "voice", "video", "thumb")
_ESCAPE = re.compile(rb"\\u[0-9a-fA-F]{4}")


def error(code: int, message: str) -> dict[str, Any]:
    return {"errcode": code, "errmsg": f"{message} rid: {secrets.token_hex(4)}-{secrets.token_hex(4)}"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any  # parsed JSON, or None
    raw_body: bytes
    kind: str  # "token" | "send" | "upload" | "media" | "video" | "unknown"
    received_at: float
    answer: dict[str, Any] | None = None  # the JSON answered, when it was JSON
    answered_at: float | None = None  # time.monotonic() when the JSON answer was made

    @property
    def errcode(self) -> int:
        return int((self.answer or {}).get("errcode", 0))


@dataclass(frozen=True)
class SentMessage:
    body: dict[str, Any]
    request: RecordedRequest


@dataclass
class _Blob:
    data: bytes
    mime_type: str
    video: bool = False


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class FakeWeChatAPI:
    """``async with FakeWeChatAPI(apps={app_id: app_secret}) as wechat``, or ``start()``/``stop()``."""

    apps: Mapping[str, str] = field(default_factory=dict)
    expires_in: int = 7200
    latency_s: float = 0.0  # every send waits this long before its answer (benchmarks: 0.05)
    requests: list[RecordedRequest] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.port = free_port()
        self._apps = dict(self.apps)
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (app id, valid until, monotonic)
        self._retired: dict[str, int] = {}  # token -> the errcode it now answers
        self._closed: set[str] = set()
        self._faults: collections.deque[tuple[int, str]] = collections.deque()
        self._token_delay_s = 0.0
        self.media: dict[str, _Blob] = {}
        self.uploads: list[tuple[str, _Blob]] = []  # (media_id, what was uploaded), in order
        self.issued: list[str] = []  # every access token handed out, in order
        self._app = Starlette(
            routes=[
                Route("/cgi-bin/token", self._token, methods=["GET"]),
                Route("/cgi-bin/message/custom/send", self._send, methods=["POST"]),
                Route("/cgi-bin/media/upload", self._upload, methods=["POST"]),
                Route("/cgi-bin/media/get", self._media, methods=["GET"]),
                Route("/video-download/{media_id}", self._video, methods=["GET"]),
                Route("/{path:path}", self._unknown, methods=["GET", "POST"]),
            ]
        )
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,  # the query strings carry secrets and tokens
            lifespan="off",
            proxy_headers=False,
            timeout_keep_alive=120,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeWeChatAPI:
        self._task = await start_serving(self._server)
        return self

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
            self._task = None

    async def __aenter__(self) -> FakeWeChatAPI:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- set-up and faults ----------------------------------------------------------

    def add_app(self, app_id: str, app_secret: str) -> None:
        self._apps[app_id] = app_secret

    def add_media(self, data: bytes, mime_type: str, *, video: bool = False) -> str:
        """Media a follower sent (an inbound message's ``MediaId``); returns its id. A video is
        answered by ``media/get`` as ``{"video_url"}``, as WeChat does."""
        media_id = secrets.token_urlsafe(48)
        self.media[media_id] = _Blob(data, mime_type, video)
        return media_id

    def expire_all(self, code: int = 40001) -> None:
        """Every token handed out so far answers ``code`` (40001 or 42001) from now on."""
        for token in self._tokens:
            self._retired.setdefault(token, code)

    def close_window(self, openid: str) -> None:
        """More than 48 h since ``openid`` wrote: sends to them answer 45015."""
        self._closed.add(openid)

    def busy(self, n: int = 1) -> None:
        """The next ``n`` sends answer -1, "system error"."""
        self.fail_next(n, -1, "system error")

    def fail_next(self, n: int, code: int, message: str) -> None:
        """The next ``n`` sends (after their token was accepted) answer ``code``."""
        self._faults.extend([(code, message)] * n)

    def delay_tokens(self, seconds: float) -> None:
        """Every token request waits ``seconds`` before its answer (to make two instances overlap)."""
        self._token_delay_s = seconds

    # -- reading what happened -------------------------------------------------------

    def sent(self) -> list[SentMessage]:
        """The customer service messages accepted, in arrival order."""
        return [
            SentMessage(r.body, r)
            for r in self.requests
            if r.kind == "send" and r.answer == {"errcode": 0, "errmsg": "ok"}
        ]

    def sends(self) -> list[RecordedRequest]:
        """Every send request received, whatever became of it."""
        return [r for r in self.requests if r.kind == "send"]

    @property
    def refreshes(self) -> int:
        """How many access tokens were handed out."""
        return len(self.issued)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"fake WeChat API: condition not met within {timeout} s"
            await asyncio.sleep(0.01)

    # -- the server ----------------------------------------------------------------------

    async def _record(self, request: Request, kind: str) -> RecordedRequest:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw and kind == "send" else None
        except ValueError:
            body = None
        record = RecordedRequest(
            request.method, request.url.path, dict(request.query_params), body, raw, kind, time.monotonic()
        )
        self.requests.append(record)
        return record

    def _json(self, record: RecordedRequest, answer: dict[str, Any], status: int = 200) -> Response:
        record.answer, record.answered_at = answer, time.monotonic()
        return JSONResponse(answer, status, media_type="application/json; encoding=utf-8")

    def _check_token(self, request: Request) -> str:
        token = request.query_params.get("access_token")
        if not token:
            raise _Refused(41001, "access_token missing")
        if token in self._retired:
            code = self._retired[token]
            raise _Refused(code, "access_token expired" if code == 42001 else _INVALID_TOKEN)
        issued = self._tokens.get(token)
        if issued is None:
            raise _Refused(40001, _INVALID_TOKEN)
        if time.monotonic() > issued[1]:
            raise _Refused(42001, "access_token expired")
        return issued[0]

    async def _token(self, request: Request) -> Response:
        record = await self._record(request, "token")
        if self._token_delay_s:
            await asyncio.sleep(self._token_delay_s)
        query = request.query_params
        if query.get("grant_type") != "client_credential":
            return self._json(record, error(40002, "invalid grant_type"))
        app_id = query.get("appid", "")
        if app_id not in self._apps:
            return self._json(record, error(40013, "invalid appid"))
        if query.get("secret") != self._apps[app_id]:
            return self._json(record, error(40125, "invalid appsecret"))
        now = time.monotonic()
        for old, (app, until) in list(self._tokens.items()):
            if app == app_id:
                self._tokens[old] = (app, min(until, now + TOKEN_OVERLAP_S))
        token = secrets.token_urlsafe(96)  # real ones are ~136 characters
        self._tokens[token] = (app_id, now + self.expires_in)
        self.issued.append(token)
        return self._json(record, {"access_token": token, "expires_in": self.expires_in})

    async def _send(self, request: Request) -> Response:
        record = await self._record(request, "send")
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
        try:
            self._check_token(request)
            check_send(record.raw_body, record.body, set(self.media) | {m for m, _ in self.uploads})
            if self._faults:
                raise _Refused(*self._faults.popleft())
            if record.body["touser"] in self._closed:
                raise _Refused(45015, "response out of time limit or subscription is canceled")
        except _Refused as refused:
            return self._json(record, error(refused.code, refused.message))
        return self._json(record, {"errcode": 0, "errmsg": "ok"})

    async def _upload(self, request: Request) -> Response:
        record = await self._record(request, "upload")
        try:
            self._check_token(request)
            media_type = request.query_params.get("type")
            if media_type not in MEDIA_TYPES:
                raise _Refused(40004, "invalid media type")
            form = await request.form()
            media = form.get("media")
            if not isinstance(media, UploadFile):
                raise _Refused(41005, "media data missing")
            data = await media.read()
            if not data:
                raise _Refused(44001, "empty media data")
        except _Refused as refused:
            return self._json(record, error(refused.code, refused.message))
        media_id = secrets.token_urlsafe(48)
        self.uploads.append((media_id, _Blob(data, media.content_type or "application/octet-stream")))
        answer = {"type": media_type, "media_id": media_id, "created_at": int(time.time())}
        return self._json(record, answer)

    async def _media(self, request: Request) -> Response:
        record = await self._record(request, "media")
        try:
            self._check_token(request)
        except _Refused as refused:
            return self._json(record, error(refused.code, refused.message))
        media_id = request.query_params.get("media_id", "")
        blob = self.media.get(media_id)
        if blob is None:
            return self._json(record, error(40007, "invalid media_id"))
        if blob.video:
            return self._json(record, {"video_url": f"{self.base_url}/video-download/{media_id}"})
        extension = {"image/jpeg": "jpg", "image/png": "png", "audio/amr": "amr"}.get(blob.mime_type, "bin")
        headers = {"Content-disposition": f'attachment; filename="{media_id[:16]}.{extension}"'}
        return Response(blob.data, media_type=blob.mime_type, headers=headers)

    async def _video(self, request: Request) -> Response:
        await self._record(request, "video")
        blob = self.media.get(request.path_params["media_id"])
        if blob is None or not blob.video:
            return Response("Not Found", 404, media_type="text/plain")
        return Response(blob.data, media_type=blob.mime_type)

    async def _unknown(self, request: Request) -> Response:
        record = await self._record(request, "unknown")
        return self._json(record, error(40066, "invalid url"), 404)


_INVALID_TOKEN = "invalid credential, access_token is invalid or not latest"


def check_send(raw: bytes, body: Any, media_ids: set[str]) -> None:
    """Raise the errcode WeChat answers for a malformed customer service message."""
    if _ESCAPE.search(raw):
        raise _Refused(40033, "invalid charset. please check your request, if include \\uxxxx will create fail!")
    if not isinstance(body, dict):
        raise _Refused(47001, "data format error")
    if not isinstance(body.get("touser"), str) or not body["touser"]:
        raise _Refused(40003, "invalid openid")
    kind = body.get("msgtype")
    if kind not in MESSAGE_TYPES:
        raise _Refused(40008, "invalid message type")
    content = body.get(kind)
    if not isinstance(content, dict):
        raise _Refused(47001, "data format error")
    if kind == "text" and not (isinstance(content.get("content"), str) and content["content"].strip()):
        raise _Refused(44004, "empty content")
    if kind == "image" and content.get("media_id") not in media_ids:
        raise _Refused(40007, "invalid media_id")
