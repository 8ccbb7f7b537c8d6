"""Multipart uploads are authenticated before their body is read."""

from __future__ import annotations

import asyncio
import json

from domain.usecases.messaging import MessagingSettings

BOUNDARY = "----imbrace-test-boundary"
DECLARED = 48 * 1024 * 1024
SENT = 256 * 1024


async def post_partly(server, authorization: str | None) -> tuple[bytes, bytes]:
    """Declares a 48 MB multipart body, sends 256 KiB of it, and waits for the answer.

    A server that reads the body before answering waits for the remaining 47.75 MB
    that never come, and this times out.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        head = [
            "POST /graphql HTTP/1.1",
            f"Host: 127.0.0.1:{server.port}",
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
            f"Content-Length: {DECLARED}",
        ]
        if authorization:
            head.append(f"Authorization: {authorization}")
        operations = json.dumps({"query": "mutation { __typename }", "variables": {}})
        start = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n{operations}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="0"; filename="big.bin"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + start + b"x" * (SENT - len(start)))
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        length = int(
            next(line.split(b":")[1] for line in headers.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        )
        return status_line, await asyncio.wait_for(reader.readexactly(length), timeout=5)
    finally:
        writer.close()


async def test_a_big_upload_without_a_valid_token_is_refused_before_it_is_read(make_server):
    server = await make_server(messaging=MessagingSettings())  # 25 MiB uploads: 48 MB passes the size limit
    unauthenticated = await server.http.post("/graphql", json={"query": "{ me { id } }"})
    for authorization in (None, "Bearer not-a-token", "Basic abc"):
        status_line, body = await post_partly(server, authorization)
        assert status_line.split()[1] == str(unauthenticated.status_code).encode()
        assert json.loads(body) == unauthenticated.json()
        assert unauthenticated.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
