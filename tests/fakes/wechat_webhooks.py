"""The XML WeChat POSTs to an official account's server URL, and the query signature it carries.

Shapes, as WeChat documents them (Receiving_standard_messages.html, Receiving_event_pushes.html;
see :mod:`api.channels.wechat` for the pages): ``<xml>`` with ``ToUserName`` (the account's
original id, ``gh_…``), ``FromUserName`` (the follower's OpenID), ``CreateTime`` (Unix seconds),
``MsgType``, then per type ``Content``; ``PicUrl``, ``MediaId``; ``MediaId``, ``Format``,
``Recognition``; ``MediaId``, ``ThumbMediaId``; ``Location_X``, ``Location_Y``, ``Scale``,
``Label``; ``Title``, ``Description``, ``Url``; and ``MsgId`` (a 64-bit integer). Text values
are CDATA, numbers bare. Events: ``MsgType`` event, ``Event`` subscribe / unsubscribe,
``EventKey`` (empty, or ``qrscene_…``).

Signature (Access_Overview.html): query ``signature`` = hex SHA-1 of ``token``, ``timestamp``
and ``nonce`` sorted and joined, with ``timestamp`` and ``nonce`` beside it; the verification
GET adds ``echostr``.

Hostile bodies: the "billion laughs" entity expansion and an external entity reading a local
file, the two attacks defusedxml exists for.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import httpx

ACCOUNT = "gh_3a4c1b2d5e6f"


def sign(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted((token, timestamp, nonce))).encode()).hexdigest()


def signed_params(token: str, *, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**10))
    return {"signature": sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}


async def push(http: httpx.AsyncClient, url: str, token: str, body: bytes, **params: str) -> httpx.Response:
    """POST ``body`` as WeChat does: signed query, ``Content-Type: text/xml``."""
    query = {**signed_params(token), **params}
    return await http.post(url, params=query, content=body, headers={"Content-Type": "text/xml"})


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def xml(fields: dict[str, Any]) -> bytes:
    """``<xml>`` with each field in order: strings as CDATA, numbers bare, as WeChat writes them."""
    parts = ["<xml>"]
    for name, value in fields.items():
        text = str(value) if isinstance(value, (int, float)) else _cdata(str(value))
        parts.append(f"<{name}>{text}</{name}>")
    parts.append("</xml>")
    return "".join(parts).encode()


def _new_msg_id() -> int:
    return secrets.randbelow(9 * 10**18) + 10**18


def message(
    openid: str, msg_type: str, *, msg_id: int | None = None, create_time: int | None = None, **fields: Any
) -> bytes:
    return xml(
        {
            "ToUserName": ACCOUNT,
            "FromUserName": openid,
            "CreateTime": create_time or int(time.time()),
            "MsgType": msg_type,
            **fields,
            "MsgId": msg_id or _new_msg_id(),
        }
    )


def text(openid: str, content: str, **kw: Any) -> bytes:
    return message(openid, "text", Content=content, **kw)


def image(openid: str, media_id: str, **kw: Any) -> bytes:
    return message(openid, "image", PicUrl="http://mmbiz.qpic.cn/mmbiz_jpg/fake/0", MediaId=media_id, **kw)


def voice(openid: str, media_id: str, *, format: str = "amr", recognition: str | None = None, **kw: Any) -> bytes:
    extra = {"Recognition": recognition} if recognition is not None else {}
    return message(openid, "voice", MediaId=media_id, Format=format, **extra, **kw)


def video(openid: str, media_id: str, **kw: Any) -> bytes:
    return message(openid, "video", MediaId=media_id, ThumbMediaId="thumb-" + media_id[:10], **kw)


def location(openid: str, latitude: float, longitude: float, label: str, **kw: Any) -> bytes:
    return message(openid, "location", Location_X=latitude, Location_Y=longitude, Scale=20, Label=label, **kw)


def link(openid: str, title: str, description: str, url: str, **kw: Any) -> bytes:
    return message(openid, "link", Title=title, Description=description, Url=url, **kw)


def event(openid: str, name: str, event_key: str = "") -> bytes:
    return xml(
        {
            "ToUserName": ACCOUNT,
            "FromUserName": openid,
            "CreateTime": int(time.time()),
            "MsgType": "event",
            "Event": name,
            "EventKey": event_key,
        }
    )


def billion_laughs(openid: str) -> bytes:
    """Nine levels of ten references: a gigabyte of "lol" if any parser expanded it."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{"".join(f"&lol{i - 1};" for _ in range(10))}">' for i in range(1, 10)
    ]
    doctype = "<!DOCTYPE xml [" + "".join(entities) + "]>"
    body = text(openid, "PLACEHOLDER").decode().replace("<![CDATA[PLACEHOLDER]]>", "&lol9;")
    return ('<?xml version="1.0"?>' + doctype + body).encode()


def external_entity(openid: str, target: str = "file:///etc/passwd") -> bytes:
    """An external entity: a parser that resolved it would put a local file in the message."""
    doctype = f'<!DOCTYPE xml [<!ENTITY secret SYSTEM "{target}">]>'
    body = text(openid, "PLACEHOLDER").decode().replace("<![CDATA[PLACEHOLDER]]>", "&secret;")
    return ('<?xml version="1.0"?>' + doctype + body).encode()


def encrypted(openid: str) -> bytes:
    """What a "safe mode" account pushes: only the encrypted message."""
    return xml({"ToUserName": ACCOUNT, "Encrypt": secrets.token_urlsafe(120)})
