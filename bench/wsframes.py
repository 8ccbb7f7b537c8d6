"""The send per fan-out delivery alone: through ASGI, or one frame written to each socket.

``python -m bench.wsframes [--sockets 2000] [--rounds 30]`` serves N WebSockets with
uvicorn (``websockets-sansio``, no compression, as ``imbrace serve``) in this
process, connects N clients, then sends one ~300-byte ``next`` message to every
socket, alternately the way a subscription group did before
(``await websocket.send_text(text)`` per socket: Starlette, uvicorn's ASGI send,
a UTF-8 encoding and a websockets frame each) and the way it does now (the frame
built once, :func:`api.ws_frames.write_frame` per socket). The sending loop runs
without yielding, so the CPU time of this thread over it (``time.thread_time``) is
the server's cost per send, the socket write included; the clients read between
rounds. Prints µs per send for each way: median and spread over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute

from api.embedded import free_port
from api.middleware import RequestId
from api.ws_frames import text_frame, write_frame
from bench.common import raise_nofile

BODY = json.dumps(
    {
        "data": {
            "conversationEvents": {
                "id": "123456",
                "kind": "MESSAGE",
                "conversationId": "6750a1b2c3d4e5f601234567",
                "at": "2026-12-04T04:30:00.123456+00:00",
                "conversation": {
                    "id": "6750a1b2c3d4e5f601234567",
                    "status": "REP_NEEDED",
                    "lastMessageAt": "2026-12-04T04:30:00.123456+00:00",
                },
            }
        }
    }
)


async def main_async(n: int, rounds: int) -> dict:
    raise_nofile()
    sockets: list = []

    async def endpoint(websocket) -> None:
        await websocket.accept()
        sockets.append(websocket)
        try:
            while True:
                await websocket.receive_text()
        except Exception:  # noqa: BLE001 - disconnected
            pass

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)], middleware=[Middleware(RequestId)])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio", ws_per_message_deflate=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    clients = []
    for _ in range(n):
        clients.append(await websockets.connect(f"ws://127.0.0.1:{port}/ws", compression=None, max_queue=None))
    while len(sockets) < n:
        await asyncio.sleep(0.01)
    received = [0]

    async def drain(client) -> None:
        async for _ in client:
            received[0] += 1

    readers = [asyncio.create_task(drain(c)) for c in clients]
    costs: dict[str, list[float]] = {"asgi": [], "frame": []}
    for r in range(rounds * 2):
        way = "asgi" if r % 2 == 0 else "frame"
        expected = received[0] + n
        started = time.thread_time()
        if way == "asgi":
            text = f'{{"id":"1","type":"next","payload":{BODY}}}'
            for ws in sockets:
                await ws.send_text(text)
        else:
            frame = text_frame(f'{{"id":"1","type":"next","payload":{BODY}}}'.encode())
            for ws in sockets:
                if not write_frame(ws.scope, frame):
                    raise RuntimeError("the frame could not be written directly")
        costs[way].append((time.thread_time() - started) / n * 1e6)
        while received[0] < expected:
            await asyncio.sleep(0.01)
    for reader in readers:
        reader.cancel()
    for c in clients:
        await c.close()
    server.should_exit = True
    await task
    return {
        way: {
            "median_us": round(statistics.median(v), 2),
            "min_us": round(min(v), 2),
            "max_us": round(max(v), 2),
        }
        for way, v in costs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    import os

    result = asyncio.run(main_async(args.sockets, args.rounds))
    print(json.dumps({"sockets": args.sockets, "rounds": args.rounds, "loadavg": os.getloadavg(), **result}))


if __name__ == "__main__":
    main()
