"""One WebSocket frame written to many sockets: the fan-out's send, without a hop per layer.

A grouped subscription (:mod:`api.graphql.multiplex`) sends the same ``next``
message to thousands of sockets. Through ASGI each send is Starlette's state
checks, its exception wrapper, uvicorn's ``asgi_send``, a UTF-8 encoding of
the text and a frame built by ``websockets`` for every socket, and a chain of
coroutines: more CPU than the socket write itself. The group builds the frame
once (:func:`text_frame`) and, where the socket is served by uvicorn's
``websockets-sansio`` protocol (``imbrace serve``'s) without extensions
(``IMBRACE_WS_COMPRESSION`` off), writes it straight to the socket's transport
(:func:`write_frame`). Anywhere else (another server, compression on, a socket
closing) it answers False and the caller sends through ASGI as before.

A server's frames are unmasked (RFC 6455 section 5.1) and uvicorn never
fragments, so the protocol object has no state a whole text frame would change.
"""

from __future__ import annotations

from typing import Any

SCOPE_KEY = "imbrace.ws_protocol"

try:  # uvicorn's sans-io WebSocket protocol, and the connection state it keeps
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State

    OPEN: Any = State.OPEN
except ImportError:  # pragma: no cover - another server: every send goes through ASGI
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]
    OPEN = None


def remember_protocol(scope: dict, send: Any) -> None:
    """Called with the server's own ``send`` (before any middleware wraps it): note the
    protocol object behind a WebSocket, if it is one :func:`write_frame` can write to."""
    protocol = getattr(send, "__self__", None)
    if WebSocketsSansIOProtocol is not None and isinstance(protocol, WebSocketsSansIOProtocol):
        scope[SCOPE_KEY] = protocol


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked text frame carrying ``payload`` (UTF-8)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 65536:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


def write_frame(scope: dict, frame: bytes) -> bool:
    """Write an already built frame to the socket of ``scope``; False: not possible here, send
    it through ASGI instead (which also reports a closed socket as ASGI does)."""
    protocol = scope.get(SCOPE_KEY)
    if protocol is None:
        return False
    conn = protocol.conn
    if (
        not protocol.handshake_complete
        or protocol.close_sent
        or protocol.initial_response is not None
        or conn.state is not OPEN
        or conn.extensions  # permessage-deflate: each socket compresses with its own context
        or protocol.transport.is_closing()
    ):
        return False
    protocol.transport.write(frame)
    return True
