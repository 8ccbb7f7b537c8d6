"""What Meta's two messaging platforms share: webhook verification, the Graph API's error
envelope, Meta's timestamps, bounded text out of untrusted payloads, and media downloads.

WhatsApp Cloud API and the Messenger Platform both deliver Graph API webhooks: a GET
handshake (``hub.mode=subscribe``, ``hub.verify_token``, ``hub.challenge`` echoed back),
then POSTs signed with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body,
keyed by the app secret>``. Both refuse requests with the same envelope,
``{"error": {"message", "type", "code", "error_subcode", "error_user_msg",
"error_data": {"details"}, "fbtrace_id"}}``, and Meta advises building on ``code`` and
``details`` rather than on titles.

Documentation relied on:

- https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/create-webhook-endpoint
  (verification request, ``X-Hub-Signature-256`` payload validation)
- https://developers.facebook.com/docs/messenger-platform/webhook-reference (the same for Messenger)
- https://developers.facebook.com/docs/graph-api/guides/error-handling (the envelope; codes 1, 2, 4, 17
  and 341 mean "wait and retry")
- https://developers.facebook.com/documentation/business-messaging/whatsapp/support/error-codes
  (``error_data.details``; build on ``code`` and ``details``)
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx

from api.addresses import special_host
from api.channels.http import retry_after
from api.channels.inbound import Media
from domain.delivery import Failed, Retry
from domain.validation import EARLIEST_TIME, MAX_NAME_LENGTH, MAX_TEXT_LENGTH, is_well_formed

SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_CHALLENGE_LENGTH = 200
MAX_REASON_LENGTH = 500
MAX_ID_LENGTH = 200
MAX_URL_LENGTH = 4096

_SIGNATURE_PREFIX = "sha256="
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
# Meta's challenge is a number; anything beyond URL-safe token characters is refused, so the
# echo can never carry markup or header-breaking characters back out of our server.
_CHALLENGE = re.compile(r"[A-Za-z0-9._~-]{1," + str(MAX_CHALLENGE_LENGTH) + "}")
_ID = re.compile(r"[\x21-\x7e]{1," + str(MAX_ID_LENGTH) + "}")
_DIGITS = re.compile(r"[0-9]{1,20}")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9*][a-z0-9!#$&^_.+-]{0,126}")
_URL_IN_TEXT = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]{1,15}://|www\.)\S+")
_TOKEN_IN_TEXT = re.compile(r"(?i:access_token)=[^\s&]*|\bEA[A-Za-z0-9]{30,}")
_CONTROLS = {code: " " for code in (*range(32), 127)}
_LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_REASON = "The provider refused the request without saying why."


# verify


def signature_matches(app_secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``X-Hub-Signature-256``) signs exactly ``body`` with the app secret.

    Compared in constant time. A missing or malformed header is no signature, and an empty
    secret verifies nothing: anyone can compute an HMAC keyed by the empty string.
    """
    if not app_secret or not isinstance(header, str) or not header.startswith(_SIGNATURE_PREFIX):
        return False
    given = header[len(_SIGNATURE_PREFIX) :]
    if not _HEX_DIGEST.fullmatch(given):
        return False
    expected = hmac.new(app_secret.encode("utf-8", "surrogatepass"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given.lower())


def handshake(params: Mapping[str, str], verify_token: str) -> str | None:
    """The ``hub.challenge`` to answer Meta's subscription check with, or None (answer 403).

    Only for ``hub.mode=subscribe`` with our verify token (compared in constant time), and
    only when the challenge is a short plain token: it is echoed verbatim in the response.
    """
    mode, token, challenge = (params.get(k) for k in ("hub.mode", "hub.verify_token", "hub.challenge"))
    if mode != "subscribe" or not verify_token or not isinstance(token, str) or not isinstance(challenge, str):
        return None
    if not hmac.compare_digest(token.encode("utf-8", "surrogatepass"), verify_token.encode("utf-8", "surrogatepass")):
        return None
    return challenge if _CHALLENGE.fullmatch(challenge) else None


# errors


def graph_error(body: Any, secrets: Collection[str] = ()) -> tuple[str | None, str]:
    """(code, readable message) from a Graph API error envelope; any other body gives (None, a generic message).

    The message joins ``message``, ``error_user_msg`` and ``error_data.details`` when present,
    on one line, without URLs or tokens (see :func:`safe_reason`): it is stored and shown to
    agents, and Meta's texts sometimes carry links.
    """
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, _NO_REASON
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    parts: list[str] = []
    for value in (error.get("message"), error.get("error_user_msg"), details):
        part = safe_reason(value, secrets)
        if part and part not in parts:
            parts.append(part)
    return code_of(error.get("code")), clip(" — ".join(parts), MAX_REASON_LENGTH) or _NO_REASON


def code_of(value: Any) -> str | None:
    """A provider's numeric error code as text (Meta sends numbers; strings of digits are taken too)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12:
        return str(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return value
    return None


def safe_reason(value: Any, secrets: Collection[str] = ()) -> str | None:
    """A provider's words made fit to store and show: one bounded line, the given secrets,
    anything shaped like an access token, and every URL replaced."""
    if not isinstance(value, str):
        return None
    text = value[: MAX_REASON_LENGTH * 4]
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _TOKEN_IN_TEXT.sub("[redacted]", _URL_IN_TEXT.sub("[link]", text))
    return line_of(text, MAX_REASON_LENGTH)


# bounded values out of untrusted payloads


def text_of(value: Any, limit: int = MAX_TEXT_LENGTH) -> str | None:
    """Text a customer wrote: trimmed, well-formed, without NUL, clipped to ``limit``; None if
    not a string or empty. What every stored string must satisfy (``domain.validation``)."""
    if not isinstance(value, str):
        return None
    return clip(_well_formed(value).replace("\x00", "").strip(), limit) or None


def line_of(value: Any, limit: int = MAX_NAME_LENGTH) -> str | None:
    """A single line (a name, a title): control characters and runs of white space become one space."""
    if not isinstance(value, str):
        return None
    return clip(" ".join(_well_formed(value).translate(_CONTROLS).split()), limit) or None


def id_of(value: Any) -> str | None:
    """A provider identifier (wamid, wa_id, PSID, media id) as given, or None: never clipped,
    since a clipped id would name something else."""
    return value if isinstance(value, str) and _ID.fullmatch(value) else None


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, the last one an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


def media_type_of(value: Any) -> str | None:
    """``type/subtype`` in lower case, parameters dropped; None if it isn't one."""
    if not isinstance(value, str):
        return None
    candidate = value.split(";", 1)[0].strip().lower()
    return candidate if _MEDIA_TYPE.fullmatch(candidate) else None


def number_of(value: Any) -> float | None:
    """A finite number (JSON number or numeric string), for coordinates."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value[:40] if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def maps_link(latitude: Any, longitude: Any) -> str | None:
    """A Google Maps link to the point, when both coordinates are valid."""
    lat, lng = number_of(latitude), number_of(longitude)
    if lat is None or lng is None or not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return None
    return f"https://maps.google.com/?q={_coordinate(lat)},{_coordinate(lng)}"


def from_unix(value: Any, *, millis: bool = False) -> datetime | None:
    """Meta's Unix time (WhatsApp: seconds as a string; Messenger: milliseconds as a number) as
    an aware UTC datetime; None for anything else or outside 2000..2200."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not (value == value and abs(value) < 10**18):  # NaN, infinities, and ints no float can hold
        return None
    seconds = value / 1000 if millis else value
    if not EARLIEST_TIME.timestamp() <= seconds < _LATEST_TIME.timestamp():
        return None
    if isinstance(value, int):  # exact: a Messenger watermark is compared with stored times
        return _EPOCH + (timedelta(milliseconds=value) if millis else timedelta(seconds=value))
    return _EPOCH + timedelta(seconds=seconds)


def name_from_url(url: str) -> str | None:
    """The file name a CDN URL's path ends with (``…/12345_report.pdf?…`` → ``12345_report.pdf``)."""
    try:
        path = httpx.URL(url).path
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    name = line_of(unquote(path.rsplit("/", 1)[-1]), MAX_NAME_LENGTH)
    return name if name and "." in name.strip(".") else None


def guess_media_type(url: str, fallback: str) -> str:
    """The media type a URL's file extension suggests, if it agrees with ``fallback``'s major
    type (``image/*`` …); else ``fallback``. Provisional: the download's own type wins later."""
    guessed = mimetypes.guess_type(name_from_url(url) or "")[0]
    major = fallback.split("/", 1)[0]
    if guessed and (fallback == "application/octet-stream" or guessed.startswith(major + "/")):
        return guessed
    return fallback


# media downloads


def may_fetch(url: str, base_url: str) -> bool:
    """Whether a media URL taken from a provider's answer or webhook may be fetched.

    HTTPS to a public host name or address only, without credentials in the URL; or the very
    origin of the configured Graph API base URL (which lets tests point both at a local fake).
    Loopback, private, link-local and other special addresses are refused, so a forged or
    tampered URL can't make this server probe its own network. (A public name that resolves
    to a private address is not caught here: that needs the resolver.)
    """
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        return False
    try:
        target, base = httpx.URL(url), httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return False
    if target.userinfo or not target.host:
        return False
    if (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port):
        return True
    return target.scheme == "https" and not _special_host(target.host)


async def download(
    http: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int,
    base_url: str,
    headers: Mapping[str, str] | None = None,
    mime_type: str | None = None,
    name: str | None = None,
    max_redirects: int = 3,
) -> Media | Retry | Failed:
    """GET a provider's media file, reading at most ``max_bytes``.

    Redirects are followed by hand, each target checked by :func:`may_fetch`, and ``headers``
    (a bearer token) are dropped as soon as the origin changes: a token must never travel to
    a host it wasn't meant for. A declared ``Content-Length`` over the limit is refused
    before reading; otherwise the stream stops one chunk past the limit. No reason names the URL.
    """
    current, sending = url, dict(headers or {})
    sending["Accept-Encoding"] = "identity"  # media is compressed already; keeps the size honest
    for _ in range(max_redirects + 1):
        if not may_fetch(current, base_url):
            return Failed("The provider gave a media address this server does not fetch from.")
        try:
            async with http.stream("GET", current, headers=sending, follow_redirects=False) as response:
                if response.is_redirect and response.headers.get("location"):
                    following = _joined(response.url, response.headers["location"])
                    if following is None:
                        return Failed("The provider's media download redirected to an invalid address.")
                    if _origin(following) != _origin(current):
                        sending = {"Accept-Encoding": "identity"}
                    current = following
                    continue
                if response.status_code == 429 or response.status_code >= 500:
                    return Retry(
                        f"The provider answered HTTP {response.status_code} to the media download.",
                        None,
                        retry_after(response.headers.get("retry-after")),
                    )
                if response.status_code == 202:  # taken, not ready: LINE prepares videos and audio first
                    waited = retry_after(response.headers.get("retry-after"))
                    return Retry("The provider is still preparing the file.", None, waited)
                if response.status_code != 200:
                    return Failed(f"The provider refused the media download (HTTP {response.status_code}).")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    return _too_large(max_bytes)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        return _too_large(max_bytes)
                    chunks.append(chunk)
                found = mime_type or media_type_of(response.headers.get("content-type"))
                return Media(b"".join(chunks), found or "application/octet-stream", name)
        except httpx.TimeoutException as error:
            return Retry(f"Timed out downloading the media ({type(error).__name__}).")
        except httpx.HTTPError as error:
            return Retry(f"Could not download the media ({type(error).__name__}).")
    return Failed("The provider's media download redirected too many times.")


def _too_large(max_bytes: int) -> Failed:
    return Failed(f"The file is too large: the limit is {max_bytes} bytes.")


def _joined(base: httpx.URL, location: str) -> str | None:
    try:
        joined = str(base.join(location))
        httpx.URL(joined)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    return joined


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _special_host(host: str) -> bool:
    return special_host(host)  # the rule integrators' webhooks follow too (api/addresses.py)


def _well_formed(text: str) -> str:
    """Lone surrogates (``"\\ud800"`` in JSON) replaced: no store can keep them."""
    if is_well_formed(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _coordinate(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")
