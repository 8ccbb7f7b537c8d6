"""Fields whose answer depends on who asks carry the PerViewer mark, and sharing honours it."""

import asyncio
import inspect
import re
from types import SimpleNamespace

import pytest

from api.graphql.multiplex import Multiplexer
from api.graphql.schema import build_schema
from api.graphql.strawberry_adapter import graphql_schema_of, strawberry_field_of
from api.graphql.viewer_fields import PerViewer, per_viewer_fields, selects_per_viewer_field
from api.settings import Settings
from domain.enums import OrgRole
from domain.visibility import Viewer, visibility_of
from tests.world import new_org
from tests.ws import Subscriber

# Root fields run once per operation, never inside a shared execution: the sharing key
# covers what they read of the viewer (visibility, and the member for a JOINED filter).
ROOTS = {"Query", "Mutation", "Subscription"}
READS_VIEWER = re.compile(r"\.viewer\b|visibility\(")


@pytest.fixture(scope="module")
def schema():
    return graphql_schema_of(build_schema(Settings()))


def resolvers(schema):
    for type_ in schema.type_map.values():
        if type_.name.startswith("__") or type_.name in ROOTS:
            continue
        for name, field in (getattr(type_, "fields", None) or {}).items():
            definition = strawberry_field_of(field)
            resolver = getattr(definition, "base_resolver", None)
            if resolver is not None:
                yield type_.name, name, definition, inspect.getsource(resolver.wrapped_func)


def test_every_resolver_that_reads_the_viewer_is_marked(schema):
    unmarked = [
        f"{t}.{f}"
        for t, f, definition, source in resolvers(schema)
        if READS_VIEWER.search(source) and not any(isinstance(e, PerViewer) for e in definition.extensions)
    ]
    assert unmarked == [], f"resolvers reading the viewer without PerViewer(): {unmarked}"


def test_the_check_sees_the_known_viewer_readers(schema):
    reading = {(t, f) for t, f, _, source in resolvers(schema) if READS_VIEWER.search(source)}
    assert {
        ("Conversation", "joinedByMe"),
        ("Conversation", "team"),
        ("Notification", "canGrab"),
        ("Notification", "conversation"),
    } <= reading
    assert reading <= per_viewer_fields(schema)


def selects(schema, query: str) -> bool:
    from graphql import parse

    document = parse(query)
    operation = document.definitions[0]
    fragments = {d.name.value: d for d in document.definitions[1:]}
    return selects_per_viewer_field(schema, schema.subscription_type, operation.selection_set, fragments)


def test_marks_are_found_by_type_through_fragments(schema):
    assert not selects(schema, "subscription { conversationEvents { id conversation { id status } } }")
    assert selects(schema, "subscription { conversationEvents { conversation { team { name } } } }")
    assert selects(
        schema,
        "subscription { conversationEvents { ...E } } fragment E on ConversationEvent { "
        "conversation { ... on Conversation { joinedByMe } } }",
    )
    # ConversationEvent.conversation is not caller-dependent; Notification.conversation is
    assert not selects(schema, "subscription { conversationEvents { conversation { id } } }")
    assert selects(schema, "subscription { notificationReceived { conversation { id } } }")


def key(query: str, variables: dict | None, member: str = "m1"):
    viewer = Viewer(member_id=member, org_id="o1", org_role=OrgRole.ADMIN)
    context = SimpleNamespace(viewer=viewer, visibility=lambda: visibility_of(viewer))
    handler = SimpleNamespace(schema=build_schema(Settings()), context=context)
    operation = SimpleNamespace(query=query, variables=variables, operation_name=None)
    return Multiplexer().key(handler, operation)


EVENTS = "subscription($f: ConversationFilter) { conversationEvents(filter: $f) { id } }"


def test_the_joined_view_keeps_the_member_in_the_group_key_wherever_it_is_written():
    assert key(EVENTS, {"f": {"view": "JOINED"}})[-1] == "m1"
    assert key("subscription { conversationEvents(filter: {view: JOINED}) { id } }", None)[-1] == "m1"
    assert (
        key("subscription($v: ConversationView = JOINED) { conversationEvents(filter: {view: $v}) { id } }", None)[-1]
        == "m1"
    )
    # the word alone, elsewhere, no longer splits a group
    assert key(EVENTS, {"f": {"view": "ALL", "search": "JOINED"}})[-1] is None
    assert key(EVENTS, None)[-1] is None
    # a per-viewer field does
    assert key("subscription { conversationEvents { conversation { team { id } } } }", None)[-1] == "m1"


async def test_a_marked_field_keeps_each_member_on_their_own_stream(server):
    org = await new_org(server)
    team = await org.team("Support")
    agents = [await org.member("a"), await org.member("b")]
    for agent in agents:
        await org.add(team, agent)
    channel = await org.channel(team, "LINE")
    hub = server.services.hub

    async def streams_serving(query: str) -> int:
        async with Subscriber(server.ws_url, agents[0].token) as a, Subscriber(server.ws_url, agents[1].token) as b:
            await a.subscribe(query)
            await b.subscribe(query)
            await asyncio.sleep(0.2)
            streams = sum(len(s) for s in hub.audience.by_org.values())
            await org.customer_writes(channel, f"c{streams}{len(query)}", "hello")
            for sub in (a, b):
                conversation = (await sub.next_data())["conversationEvents"]["conversation"]
                assert conversation.get("team", {"name": "Support"}) == {"name": "Support"}
        return streams

    assert await streams_serving("subscription { conversationEvents { kind conversation { id } } }") == 1
    assert await streams_serving("subscription { conversationEvents { kind conversation { team { name } } } }") == 2
