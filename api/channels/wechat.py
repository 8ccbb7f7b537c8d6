"""WeChat Official Accounts: the XML message push in, customer service messages and temporary media out.

**Verify.** WeChat signs every call to the server URL with query parameters ``signature``,
``timestamp`` and ``nonce``: ``signature`` is the hex SHA-1 of the three strings ``token``
(chosen in the account's server configuration), ``timestamp`` and ``nonce``, sorted and
concatenated. The verification GET adds ``echostr``, echoed back as plain text when the
signature matches (:func:`signature_matches`). The signature covers no part of the body.

**Parse.** A push is one XML document ``<xml>…</xml>`` (:func:`parse`), read with defusedxml
with DTDs forbidden, so no entity is ever expanded nor an external one fetched. Messages
(``MsgType`` text, image, voice, video, shortvideo, location, link) become customer messages
from ``FromUserName`` (the follower's OpenID), de-duplicated by ``MsgId`` (WeChat retries
three times when it gets no answer within five seconds). Images, voice and video stay at
WeChat until the pipeline fetches them by ``MediaId`` (:meth:`WeChatTransport.fetch_media`);
a location becomes its label and a map link, a link its title, description and URL, a voice
message carries WeChat's ``Recognition`` text when speech recognition is on. ``subscribe`` /
``unsubscribe`` events are follows. Anything else becomes a line saying what arrived (other
message types) or is ignored (other events: menu clicks, scans, location reports). WeChat's
customer profile API needs permissions an official account may lack, so no name is looked
up (``profile_name`` is absent on purpose): WeChat customers stay nameless until an agent
names them. Accounts in "safe mode" (encrypted pushes) are refused: set plaintext or
compatible mode.

**Send.** Replies are customer service messages, ``POST /cgi-bin/message/custom/send``
(text; images are uploaded first with ``/cgi-bin/media/upload`` and sent by ``media_id``),
which WeChat accepts only within 48 h of the customer's last message (45015 after that). The
access token every call needs rides in the query string (``access_token=…``): it never
appears in a reason or a log line (httpx's request log is silenced, see
:func:`api.channels.http.quiet_http_logs`). Tokens are shared by every instance through the
store (:class:`WeChatTokens`).

Documentation relied on (developers.weixin.qq.com, as stored by the search tool, and the
public client wechatpy):

- …/doc/offiaccount/Basic_Information/Access_Overview.html and copies of it: the GET with
  ``signature``, ``timestamp``, ``nonce``, ``echostr``; sort token, timestamp, nonce in dictionary
  order, join, SHA-1, compare; the same three parameters on every later push.
- …/doc/offiaccount/Message_Management/Receiving_standard_messages.html (also
  …/doc/subscription/en/guide/product/message/Receiving_standard_messages.html): fields ToUserName,
  FromUserName (an OpenID), CreateTime (integer seconds), MsgType, Content, MsgId (64-bit integer),
  PicUrl, MediaId, Format, Recognition, ThumbMediaId, Location_X (latitude), Location_Y (longitude),
  Scale, Label, Title, Description, Url; "de-duplicate retries by msgid"; "WeChat drops the
  connection after five seconds without an answer and retries, three times in all".
- …/Receiving_event_pushes.html: ``MsgType`` event, ``Event`` subscribe / unsubscribe (``EventKey``
  ``qrscene_…`` when by QR code).
- …/doc/service/en/Basic_Information/Get_access_token.html: ``GET /cgi-bin/token?grant_type=
  client_credential&appid=…&secret=…`` → ``{"access_token", "expires_in"}`` (up to 7200 s); a new
  fetch retires the old token, both valid for five minutes, so a central store should refresh it
  ahead of time; errors ``-1`` busy, 40013 invalid AppID, 40125 invalid AppSecret, 40164 caller IP
  not in the account's whitelist (``"invalid ip …, not in whitelist"``, answered as
  ``application/json; encoding=utf-8``, as quoted on the developers' community forum).
- …/doc/service/en/api/customer/message/api_sendcustommessage: ``POST /cgi-bin/message/custom/send?
  access_token=…`` with ``{"touser", "msgtype": "text", "text": {"content"}}`` or ``"image":
  {"media_id"}``; allowed for 48 hours after the user's message (five messages per message in the
  current rules); answer ``{"errcode": 0, "errmsg": "ok"}`` without a message id.
- …/doc/service/api/material/temporary/api_uploadtempmedia and api_getmedia: ``POST
  /cgi-bin/media/upload?access_token=…&type=image`` with the multipart field ``media`` →
  ``{"type", "media_id", "created_at"}`` (kept three days; images up to 10 MB, PNG/JPEG/GIF);
  ``GET /cgi-bin/media/get?access_token=…&media_id=…`` → the file, ``{"video_url"}`` for video,
  or ``{"errcode": 40007, "errmsg": "invalid media_id"}``.
- Global return codes (the table on …/Getting_Started/Global_Return_Code.html, as copied on
  cnblogs/csdn): -1 system busy; 40001 invalid credential / access_token; 40014 invalid
  access_token; 42001 access_token expired; 45009 API call limit reached; 45015 response out of
  time limit or subscription is canceled; 45047 out of response count limit; 40007 invalid media_id.
- wechatpy (``wechatpy/messages.py``, ``client/base.py``, ``client/api/media.py``): the same fields,
  and refreshing the token once and retrying on 40001, 40014 and 42001.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from xml.etree.ElementTree import Element, ParseError

import httpx
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from api.channels.http import Answer, request_json, retry_after
from api.channels.inbound import Follow, Media, Parsed
from api.channels.meta import download, from_unix, id_of, line_of, maps_link, media_type_of, safe_reason, text_of
from api.secrets import SecretBox, SecretError
from api.store.provider_tokens import StoredToken
from domain.credentials import WeChatCredentials
from domain.delivery import Failed, Outcome, Outgoing, OutgoingFile, Retry, Sent
from domain.entities import Attachment
from domain.enums import ErrorCode, MessageKind
from domain.usecases.inbound import CustomerDetails, InboundMessage
from domain.validation import MAX_NAME_LENGTH

# errcodes: the token was refused (refresh once and retry), and "later" (retry the delivery).
TOKEN_CODES = frozenset({40001, 40014, 42001})
BUSY = -1
RETRY_CODES = frozenset({BUSY, 45009})  # system busy; API call quota reached (resets daily)
WINDOW_CLOSED = 45015
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # temporary image material
MAX_ECHO_LENGTH = 200
MAX_TOKEN_LENGTH = 2048  # WeChat: "reserve at least 512 characters"
REFRESH_AHEAD = timedelta(minutes=5)  # the old token stays valid five minutes after a refresh
DEFAULT_EXPIRES_IN = 7200

_HEX_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
_ECHO = re.compile(r"[A-Za-z0-9._~-]{1," + str(MAX_ECHO_LENGTH) + "}")
_MEDIA_ID = re.compile(r"[A-Za-z0-9_@.=-]{1,256}")
_TOKEN = re.compile(r"[\x21-\x7e]{1," + str(MAX_TOKEN_LENGTH) + "}")
_FILENAME = re.compile(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', re.IGNORECASE)
_VOICE_TYPES = {"amr": "audio/amr", "speex": "audio/speex", "mp3": "audio/mpeg"}
_NO_REASON = "WeChat refused the request without saying why."


# verify


def signature_matches(token: str, signature: str | None, timestamp: str | None, nonce: str | None) -> bool:
    """Whether ``signature`` is the SHA-1 of ``token``, ``timestamp`` and ``nonce`` sorted and
    joined, compared in constant time. Missing parameters, a malformed signature or an empty
    token verify nothing."""
    if not token or not all(isinstance(v, str) for v in (signature, timestamp, nonce)):
        return False
    assert signature is not None and timestamp is not None and nonce is not None
    if not _HEX_SHA1.fullmatch(signature) or len(timestamp) > 40 or len(nonce) > 200:
        return False
    joined = "".join(sorted((token, timestamp, nonce)))
    expected = hashlib.sha1(joined.encode("utf-8", "surrogatepass")).hexdigest()
    return hmac.compare_digest(expected, signature.lower())


def echo_of(params: Mapping[str, str], token: str) -> str | None:
    """The ``echostr`` to answer WeChat's server verification with, or None (answer 403): only
    with a matching signature, and only a short plain token, since it is echoed verbatim."""
    echo = params.get("echostr")
    if not signature_matches(token, params.get("signature"), params.get("timestamp"), params.get("nonce")):
        return None
    return echo if isinstance(echo, str) and _ECHO.fullmatch(echo) else None


# parse


class WeChatXMLError(ValueError):
    """A push that is not one plain ``<xml>`` document: malformed, with a DTD or entities
    (refused before anything is expanded), or encrypted. The message names no content."""


def parse(body: bytes) -> Parsed:
    """The customer message or follow one push carries. Raises :class:`WeChatXMLError` for a
    body that is not a plain WeChat XML document; never for odd values inside one (a
    malformed field is skipped, a message without a sender is dropped)."""
    fields = _fields(body)
    parsed = Parsed()
    openid = id_of((fields.get("FromUserName") or "").strip())
    if openid is None:
        return parsed
    kind = (line_of(fields.get("MsgType"), 40) or "unknown").lower()
    if kind == "event":
        event = (line_of(fields.get("Event"), 40) or "").lower()
        if event in ("subscribe", "unsubscribe"):
            parsed.follows.append(Follow(external_id=openid, following=event == "subscribe"))
        return parsed
    text, attachments = _content(kind, fields)
    parsed.messages.append(
        InboundMessage(
            customer=CustomerDetails(external_id=openid),
            text=text,
            attachments=attachments,
            provider_message_id=id_of((fields.get("MsgId") or "").strip()),
            sent_at=from_unix((fields.get("CreateTime") or "").strip()),
        )
    )
    return parsed


def _fields(body: bytes) -> dict[str, str]:
    """The root's child elements as text (CDATA included), DTDs and entities refused."""
    try:
        root: Element = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise WeChatXMLError("XML with a DTD, entities or external references is refused.") from None
    except (ParseError, ValueError, TypeError):
        raise WeChatXMLError("The body is not well-formed XML.") from None
    if root.tag != "xml":
        raise WeChatXMLError("The body is not a WeChat message (no <xml> root).")
    fields: dict[str, str] = {}
    for child in root:
        if isinstance(child.tag, str) and child.tag not in fields:
            fields[child.tag] = child.text or ""
    if "Encrypt" in fields and "MsgType" not in fields:
        raise WeChatXMLError("Encrypted (safe mode) pushes are not supported: use plaintext or compatible mode.")
    return fields


def _content(kind: str, fields: dict[str, str]) -> tuple[str | None, tuple[Attachment, ...]]:
    """What an agent reads and which files wait at WeChat; never both empty."""
    attachments: tuple[Attachment, ...] = ()
    text: str | None
    media_id = _media_id(fields.get("MediaId"))
    if kind == "text":
        text = text_of(fields.get("Content"))
    elif kind in ("image", "voice", "video", "shortvideo"):
        text = text_of(fields.get("Recognition")) if kind == "voice" else None
        if media_id is not None:
            attachments = (Attachment(url="", mime_type=_media_type(kind, fields), media_ref=media_id),)
        elif text is None:
            text = f"[WeChat {kind} that could not be received]"
    elif kind == "location":
        label = line_of(fields.get("Label"), 500)
        lines = [
            "Shared a location" + (f": {label}" if label else ""),
            maps_link(fields.get("Location_X"), fields.get("Location_Y")),
        ]
        text = "\n".join(line for line in lines if line)
    elif kind == "link":
        url = (fields.get("Url") or "").strip()
        lines = [
            "Shared a link" + (f": {title}" if (title := line_of(fields.get("Title"))) else ""),
            line_of(fields.get("Description"), 1000),
            line_of(url, 2048) if url.startswith(("https://", "http://")) else None,
        ]
        text = text_of("\n".join(line for line in lines if line))
    else:
        text = f"[Unsupported WeChat message: {kind}]"
    if text is None and not attachments:
        text = f"[Empty WeChat {kind} message]"
    return text, attachments


def _media_type(kind: str, fields: dict[str, str]) -> str:
    """Provisional: the download's own Content-Type wins when the file is fetched."""
    if kind == "voice":
        return _VOICE_TYPES.get((fields.get("Format") or "").strip().lower(), "audio/*")
    return {"image": "image/*", "video": "video/*", "shortvideo": "video/*"}[kind]


def _media_id(value: Any) -> str | None:
    """A media id as given, or None: it becomes a query parameter beside the access token."""
    candidate = value.strip() if isinstance(value, str) else None
    return candidate if candidate and _MEDIA_ID.fullmatch(candidate) else None


# access tokens


class TokenStore(Protocol):
    """Where tokens are shared between instances (:class:`api.store.provider_tokens.ProviderTokens`)."""

    async def get(self, key: str) -> StoredToken | None: ...
    async def claim_refresh(self, key: str, holder: str, now: datetime, lease_s: float) -> bool: ...
    async def keep(self, key: str, holder: str, sealed: str, refresh_at: datetime, expires_at: datetime) -> bool: ...
    async def release(self, key: str, holder: str) -> None: ...
    async def expire(self, key: str, sealed: str) -> None: ...


class WeChatTokens:
    """Access tokens, one per official account, kept (sealed) in the store for every instance.

    A stored token is used until five minutes before it expires; then one instance, the one
    whose claim on the refresh lease succeeds, fetches a new one while the others go on
    with the old one (still valid) or, with none usable, wait for the new one. A token
    WeChat refuses (40001, 40014, 42001) is :meth:`invalidate`\\ d, so the next :meth:`get`
    refreshes it, unless another instance already stored a newer one.

    Documents are keyed by the AppID and a fingerprint of the AppSecret, not by channel:
    the token belongs to the account (two channels connected to one account share it,
    rather than retiring each other's), a new AppSecret starts afresh, and a channel holding
    someone else's AppID without its secret can never use their token.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_url: str,
        store: TokenStore,
        box: SecretBox,
        clock: Callable[[], datetime],
        *,
        lease_s: float = 30.0,
        wait_s: float = 15.0,
        poll_s: float = 0.05,
    ) -> None:
        self._http = http
        self._base = api_url.rstrip("/")
        self._store = store
        self._box = box
        self._clock = clock
        self._lease_s = lease_s
        self._wait_s = wait_s
        self._poll_s = poll_s

    async def get(self, credentials: WeChatCredentials) -> str | Retry | Failed:
        """A usable token, fetched only when the stored one is missing or due for a refresh."""
        key = token_key(credentials)
        deadline = time.monotonic() + self._wait_s
        while True:
            stored = await self._store.get(key)
            now = self._clock()
            token = self._open(key, stored)
            if token is not None and stored is not None and stored.refresh_at is not None and now < stored.refresh_at:
                return token
            holder = secrets.token_hex(12)
            if await self._store.claim_refresh(key, holder, now, self._lease_s):
                return await self._refresh(key, holder, credentials)
            if token is not None and stored is not None and stored.expires_at is not None and now < stored.expires_at:
                return token  # another instance is refreshing; this one is still good
            if time.monotonic() >= deadline:
                return Retry("Waited too long for another instance to fetch a WeChat access token.")
            await asyncio.sleep(self._poll_s)

    async def invalidate(self, credentials: WeChatCredentials, token: str) -> None:
        """WeChat refused ``token``: the next :meth:`get` fetches a new one (once, for everyone)."""
        key = token_key(credentials)
        stored = await self._store.get(key)
        if stored is not None and stored.sealed is not None and self._open(key, stored) == token:
            await self._store.expire(key, stored.sealed)

    async def _refresh(self, key: str, holder: str, credentials: WeChatCredentials) -> str | Retry | Failed:
        try:
            fetched = await self._fetch(credentials)
        except Exception:  # a cancelled fetch leaves the lease to run out
            await self._store.release(key, holder)
            raise
        if not isinstance(fetched, tuple):
            await self._store.release(key, holder)
            return fetched
        token, expires_in = fetched
        now = self._clock()
        ahead = min(REFRESH_AHEAD, timedelta(seconds=expires_in / 2))
        sealed = self._box.encrypt(token.encode(), _associated(key))
        expires_at = now + timedelta(seconds=expires_in)
        await self._store.keep(key, holder, sealed, expires_at - ahead, expires_at)
        return token

    async def _fetch(self, credentials: WeChatCredentials) -> tuple[str, int] | Retry | Failed:
        """``GET /cgi-bin/token``: (token, seconds it lasts), or why not. The AppSecret is in the
        query string, as WeChat documents; no reason built here contains a URL or a secret."""
        answer = await request_json(
            self._http,
            "GET",
            f"{self._base}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": credentials.app_id, "secret": credentials.app_secret},
        )
        if isinstance(answer, Retry):
            return answer
        body = answer.body if isinstance(answer.body, dict) else {}
        token, expires_in = body.get("access_token"), body.get("expires_in", DEFAULT_EXPIRES_IN)
        if answer.ok and isinstance(token, str) and _TOKEN.fullmatch(token):
            if isinstance(expires_in, str) and expires_in.isdigit() and len(expires_in) < 9:
                expires_in = int(expires_in)
            if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not 0 < expires_in <= 7 * 86400:
                expires_in = DEFAULT_EXPIRES_IN
            return token, expires_in
        outcome = refusal(answer, (credentials.app_secret,))
        if isinstance(outcome, Sent):  # a 2xx without a token
            return Retry("WeChat answered the access token request without a token.")
        return outcome

    def _open(self, key: str, stored: StoredToken | None) -> str | None:
        if stored is None or stored.sealed is None:
            return None
        try:
            return self._box.decrypt(stored.sealed, _associated(key)).decode()
        except (SecretError, UnicodeDecodeError):
            return None  # sealed with another key: fetch a new one


def token_key(credentials: WeChatCredentials) -> str:
    """The store's key for an account's token: its AppID and a fingerprint of its AppSecret (a
    128-bit random secret, so the SHA-256 reveals nothing of it)."""
    material = f"imbrace:wechat-token\x00{credentials.app_id}\x00{credentials.app_secret}"
    return f"wechat:{credentials.app_id}:{hashlib.sha256(material.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}"


def _associated(key: str) -> bytes:
    return b"imbrace:provider-token:" + key.encode()


# answers


def errcode_of(body: Any) -> int | None:
    """WeChat's ``errcode`` (a number; -1 included), or None when absent or not a number."""
    value = body.get("errcode") if isinstance(body, dict) else None
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,12}", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**12:
        return value
    return None


def refusal(answer: Answer, secrets_: tuple[str, ...] = ()) -> Sent | Retry | Failed:
    """WeChat's answer as an outcome: ``errcode`` 0 (or none, on a 2xx) is Sent; 429, 5xx, -1
    and 45009 are retried, as is a refused token (after its one refresh); 45015 is the 48-hour
    window (``WECHAT_WINDOW_CLOSED``); any other code fails with ``errmsg``, made safe to show."""
    if answer.status == 429 or answer.status >= 500:
        return Retry(f"WeChat answered HTTP {answer.status}.", None, answer.retry_after_s)
    code = errcode_of(answer.body)
    if answer.ok and not code:
        if isinstance(answer.body, dict):
            return Sent(None)
        return Retry("WeChat's answer could not be read.", unknown=True)
    if code is None:
        return Failed(f"WeChat refused the request (HTTP {answer.status}).")
    message = answer.body.get("errmsg") if isinstance(answer.body, dict) else None
    reason = safe_reason(message, secrets_) or _NO_REASON
    if code in RETRY_CODES or code in TOKEN_CODES:
        return Retry(f"WeChat: {reason}", str(code), answer.retry_after_s)
    if code == WINDOW_CLOSED:
        return Failed(
            f"More than 48 hours since the customer wrote, or they unfollowed the account (WeChat {code}: {reason}).",
            ErrorCode.WECHAT_WINDOW_CLOSED.value,
        )
    return Failed(f"WeChat: {reason}", str(code))


# send


class FileReader(Protocol):
    """Our file store (:class:`api.store.files.GridFiles`): WeChat takes uploads, not links."""

    async def read(self, file_id: str) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class _Upload:
    file: OutgoingFile


class WeChatTransport:
    """Sends agents' messages as customer service messages and fetches customers' media."""

    def __init__(
        self, http: httpx.AsyncClient, api_url: str, tokens: WeChatTokens, files: FileReader | None = None
    ) -> None:
        self._http = http
        self._base = api_url.rstrip("/")
        self.tokens = tokens
        self._files = files

    async def send(self, credentials: WeChatCredentials, outgoing: Outgoing) -> Outcome:
        """One stored message as one or more customer service messages, in order: text first
        (WeChat images have no caption), then each image, uploaded as temporary material and
        sent by its ``media_id``. WeChat returns no message id; a retry sends everything again
        (at least once: WeChat offers no idempotency key)."""
        parts = _parts(outgoing)
        if isinstance(parts, Failed):
            return parts
        for part in parts:
            if isinstance(part, _Upload):
                media_id = await self._upload(credentials, part.file)
                if not isinstance(media_id, str):
                    return media_id
                message: dict[str, Any] = {"msgtype": "image", "image": {"media_id": media_id}}
            else:
                message = {"msgtype": "text", "text": {"content": part}}
            answer = await self._authorized(credentials, self._poster(outgoing.recipient, message))
            outcome = answer if isinstance(answer, (Retry, Failed)) else refusal(answer, _secrets(credentials))
            if not isinstance(outcome, Sent):
                return outcome
        return Sent(None)

    def _poster(self, recipient: str, message: dict[str, Any]) -> Callable[[str], Awaitable[Answer | Retry]]:
        """``POST /cgi-bin/message/custom/send`` of ``message`` to ``recipient``, given a token. The
        body goes as UTF-8 JSON without ``\\uXXXX`` escapes (httpx's encoding), which WeChat
        requires (40033 otherwise)."""

        async def post(token: str) -> Answer | Retry:
            return await request_json(
                self._http,
                "POST",
                f"{self._base}/cgi-bin/message/custom/send",
                json={"touser": recipient, **message},
                params={"access_token": token},
            )

        return post

    async def _upload(self, credentials: WeChatCredentials, file: OutgoingFile) -> str | Retry | Failed:
        """A stored image as WeChat temporary material; its ``media_id``, or why not. Read from our
        own file store, never fetched back over HTTP from our public URL."""
        data = await self._files.read(file.file_id) if self._files is not None and file.file_id else None
        if data is None:
            return Failed("The image is no longer in the file store.")
        if len(data) > MAX_IMAGE_BYTES:
            return Failed(f"WeChat takes images up to {MAX_IMAGE_BYTES} bytes; this one has {len(data)}.")
        mime = media_type_of(file.mime_type) or "image/jpeg"
        name = file.name or "image"

        async def post(token: str) -> Answer | Retry:
            try:
                response = await self._http.post(
                    f"{self._base}/cgi-bin/media/upload",
                    params={"access_token": token, "type": "image"},
                    files={"media": (name, data, mime)},
                )
            except httpx.TimeoutException as error:
                return Retry(f"Timed out uploading the image to WeChat ({type(error).__name__}).")
            except httpx.HTTPError as error:
                return Retry(f"Could not upload the image to WeChat ({type(error).__name__}).")
            return _answer(response.status_code, response.content, response.headers)

        answer = await self._authorized(credentials, post)
        if isinstance(answer, (Retry, Failed)):
            return answer
        media_id = _media_id(answer.body.get("media_id")) if isinstance(answer.body, dict) else None
        if answer.ok and media_id is not None and not errcode_of(answer.body):
            return media_id
        outcome = refusal(answer, _secrets(credentials))
        return outcome if not isinstance(outcome, Sent) else Retry("WeChat's upload answer had no media_id.")

    async def fetch_media(
        self, credentials: WeChatCredentials, media_ref: str, max_bytes: int
    ) -> Media | Retry | Failed:
        """A customer's file by its ``MediaId`` (``GET /cgi-bin/media/get``), at most ``max_bytes``.

        WeChat answers the file itself, or JSON: an error (``errcode``; 40007 once the media is
        older than three days), or for a video a ``video_url`` downloaded without our token."""
        if not isinstance(media_ref, str) or not _MEDIA_ID.fullmatch(media_ref):
            return Failed("Not a WeChat media id.")

        async def get(token: str) -> Media | Answer | Retry | Failed:
            return await self._get_media(token, media_ref, max_bytes)

        result = await self._authorized(credentials, get)
        if not isinstance(result, Answer):
            return result
        video_url = result.body.get("video_url") if isinstance(result.body, dict) else None
        if result.ok and isinstance(video_url, str) and not errcode_of(result.body):
            return await download(self._http, video_url, max_bytes=max_bytes, base_url=self._base)
        outcome = refusal(result, _secrets(credentials))
        return outcome if not isinstance(outcome, Sent) else Failed("WeChat answered the media request without it.")

    async def _get_media(self, token: str, media_id: str, max_bytes: int) -> Media | Answer | Retry | Failed:
        try:
            async with self._http.stream(
                "GET",
                f"{self._base}/cgi-bin/media/get",
                params={"access_token": token, "media_id": media_id},
                headers={"Accept-Encoding": "identity"},
            ) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    return Failed(f"The file is too large: the limit is {max_bytes} bytes.")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        return Failed(f"The file is too large: the limit is {max_bytes} bytes.")
                    chunks.append(chunk)
        except httpx.TimeoutException as error:
            return Retry(f"Timed out downloading the media from WeChat ({type(error).__name__}).")
        except httpx.HTTPError as error:
            return Retry(f"Could not download the media from WeChat ({type(error).__name__}).")
        data = b"".join(chunks)
        mime = media_type_of(response.headers.get("content-type"))
        if response.status_code != 200 or mime in (None, "application/json", "text/plain") or data[:1] == b"{":
            return _answer(response.status_code, data, response.headers)
        return Media(data, mime, _filename(response.headers.get("content-disposition")))

    async def _authorized(self, credentials: WeChatCredentials, call: Callable[[str], Awaitable[Any]]) -> Any:
        """``call`` with the account's token; when WeChat refuses the token, once more with a
        fresh one (which every instance then shares)."""
        for attempt in range(2):
            token = await self.tokens.get(credentials)
            if not isinstance(token, str):
                return token
            result = await call(token)
            if attempt == 0 and isinstance(result, Answer) and errcode_of(result.body) in TOKEN_CODES:
                await self.tokens.invalidate(credentials, token)
                continue
            return result
        return result


def _parts(outgoing: Outgoing) -> list[str | _Upload] | Failed:
    """Texts and images to send, in order, for one stored message."""
    kind, text, files = outgoing.kind, (outgoing.text or "").strip(), outgoing.files
    if kind in (MessageKind.TEXT, MessageKind.TEMPLATE):
        return [text] if text else Failed("There is no text to send.")
    if kind is MessageKind.CONFERENCE_LINK:
        link = files[0].url if files else None
        if link and text and link not in text:
            return [f"{text}\n\n{link}"]
        if text or link:
            return [text or f"Join the video call: {link}"]
        return Failed("There is no conference link to send.")
    if kind is MessageKind.IMAGE:
        if not files:
            return Failed("There is no image to send.")
        return ([text] if text else []) + [_Upload(file) for file in files]
    if kind is MessageKind.ATTACHMENT:
        if not files:
            return Failed("There is no file to send.")
        links = "\n".join(f"{file.name or 'File'}: {file.url}" for file in files)
        return [f"{text}\n\n{links}" if text else links]
    if kind is MessageKind.WHATSAPP_TEMPLATE:
        return Failed("WhatsApp templates can't be sent on WeChat.")
    return Failed(f"{kind.value} messages can't be sent on WeChat.")


def _answer(status: int, content: bytes, headers: httpx.Headers) -> Answer:
    try:
        body = json.loads(content) if content else None
    except (ValueError, RecursionError):
        body = None
    return Answer(status, body, retry_after(headers.get("retry-after")))


def _filename(disposition: str | None) -> str | None:
    found = _FILENAME.search(disposition or "")
    name = line_of(found.group(1), MAX_NAME_LENGTH) if found else None
    return name if name and "/" not in name and "\\" not in name and name.strip(".") else None


def _secrets(credentials: WeChatCredentials) -> tuple[str, ...]:
    return (credentials.app_secret, credentials.token)
