"""A shared stream's message is framed once and written straight to each member's socket."""

import pytest
from websockets.frames import Frame, Opcode

from api import ws_frames
from api.graphql import strawberry_adapter
from tests.world import support_desk
from tests.ws import Subscriber

EVENTS = "subscription { conversationEvents { id kind conversationId } }"


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_a_frame_is_the_one_websockets_would_build(size):
    payload = b"x" * size
    assert ws_frames.text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False)


async def test_a_shared_streams_messages_are_written_as_frames_and_a_closed_socket_is_skipped(server, monkeypatch):
    written: list[bool] = []

    def recording(scope, frame):
        wrote = ws_frames.write_frame(scope, frame)
        written.append(wrote)
        return wrote

    monkeypatch.setattr(strawberry_adapter, "write_frame", recording)
    org, team, (alice, bob), channel = await support_desk(server, "alice", "bob")
    tabs = [Subscriber(server.ws_url, agent.token) for agent in (alice, bob, bob)]
    for tab in tabs:
        await tab.connect()
        await tab.subscribe(EVENTS)
    await server.subscribed(3, streams=1)
    await org.customer_writes(channel, "c1", "hello")
    kinds = [(await tab.next_data())["conversationEvents"]["kind"] for tab in tabs]
    assert kinds == ["CREATED"] * 3 and written == [True] * 3
    await tabs[2].close()
    await server.subscribed(2, streams=1)
    await org.customer_writes(channel, "c1", "again")
    assert [(await tab.next_data())["conversationEvents"]["kind"] for tab in tabs[:2]] == ["MESSAGE"] * 2
    assert written[3:] == [True, True]
    for tab in tabs[:2]:
        await tab.close()


async def test_with_compression_on_each_socket_compresses_its_own_message(make_server, monkeypatch):
    written: list[bool] = []

    def recording(scope, frame):
        wrote = ws_frames.write_frame(scope, frame)
        written.append(wrote)
        return wrote

    monkeypatch.setattr(strawberry_adapter, "write_frame", recording)
    server = await make_server(ws_compression=True)
    org, team, (alice, bob), channel = await support_desk(server, "alice", "bob")
    tabs = [Subscriber(server.ws_url, agent.token) for agent in (alice, bob)]
    for tab in tabs:
        await tab.connect()
        await tab.subscribe(EVENTS)
    await server.subscribed(2, streams=1)
    await org.customer_writes(channel, "c1", "hello")
    assert [(await tab.next_data())["conversationEvents"]["kind"] for tab in tabs] == ["CREATED"] * 2
    assert written == [False, False]  # sent through ASGI, compressed per socket
    for tab in tabs:
        await tab.close()
