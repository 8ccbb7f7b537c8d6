"""API keys: integrations acting as apps, within their scopes and teams, over the real API.

Created by owners and admins and shown once; stored as a hash; `Bearer imb_…` over
HTTP and WebSocket; refused with FORBIDDEN beyond its scopes, absent beyond its
teams; never joins or grabs; the sender of what it sends; revoked at once on every
instance, its sockets closed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time

import pytest
import websockets
from graphql import GraphQLObjectType, get_named_type
from pymongo import monitoring

from api.graphql.schema import build_schema
from api.graphql.scopes import APP_FIELDS
from api.settings import Settings
from domain.errors import Refused
from domain.usecases import rooms
from tests import conftest
from tests.clock import FakeClock
from tests.world import Person, grab_desk, new_org, support_desk
from tests.ws import Subscriber

CREATE = """mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) {
    key apiKey { id name prefix scopes teams { id } createdAt createdBy { id } lastUsedAt revokedAt }
    errors { code field message } } }"""
KEYS = "{ apiKeys { id name prefix scopes teams { id } lastUsedAt revokedAt } }"
REVOKE = "mutation($id: ID!) { revokeApiKey(id: $id) { apiKey { id revokedAt } errors { code field } } }"
CONVERSATION = "query($id: ID!) { conversation(id: $id) { id status owner { id } customer { name } } }"
LIST = "{ conversations(first: 50) { totalCount edges { node { id } } } }"
COUNTS = "{ conversationCounts { status count } }"
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    message { id text sender { kind member { id } app { id name } } }
    conversation { id status }
    errors { code field } } }"""
MESSAGES = """query($id: ID!) { conversation(id: $id) { lastMessage { text sender { kind app { name } } }
    messages(last: 10) { edges { node { text sender { kind member { id } app { id name } } } } } } }"""
EVENTS = """subscription { conversationEvents {
    kind conversationId actor { id } app { id name } message { text } } }"""
MESSAGE_ADDED = "subscription { messageAdded { conversationId text } }"
ALL_SCOPES = ["READ_CONVERSATIONS", "SEND_MESSAGES", "MANAGE_WEBHOOKS"]
KEY_SHAPE = re.compile(r"imb_[A-Za-z0-9_-]{43}")


async def create_key(org, scopes, team_ids=(), name="Zapier", as_=None) -> tuple[Person, dict]:
    """The app as a Person (its token is the key), and the key's details."""
    data = await org.gql(CREATE, {"i": {"name": name, "scopes": scopes, "teamIds": list(team_ids)}}, as_=as_)
    payload = data["createApiKey"]
    assert payload["errors"] == [], payload
    return Person(payload["apiKey"]["id"], "", payload["key"]), payload["apiKey"]


def refused(body: dict) -> str:
    """The top-level error code of a refused request (no data at all)."""
    assert body.get("data") is None, body
    return body["errors"][0]["extensions"]["code"]


async def opened(org, channel, external_id: str, text: str = "Hello") -> str:
    return (await org.customer_writes(channel, external_id, text))["conversationId"]


# --- creating, listing, storing ------------------------------------------------------------------


async def test_owners_and_admins_create_keys_shown_once_members_may_not(server):
    org, team, (agent,), _ = await support_desk(server, "agent")
    admin = await org.member("admin", "ADMIN")
    app, details = await create_key(org, ["READ_CONVERSATIONS", "SEND_MESSAGES"], [team], name="Zapier")
    assert KEY_SHAPE.fullmatch(app.token), app.token
    assert details["prefix"] == app.token[:8] and details["prefix"].startswith("imb_")
    assert details["scopes"] == ["READ_CONVERSATIONS", "SEND_MESSAGES"]
    assert details["teams"] == [{"id": team}] and details["createdBy"] == {"id": org.owner.id}
    assert details["lastUsedAt"] is None and details["revokedAt"] is None
    other, _ = await create_key(org, ["MANAGE_WEBHOOKS"], name="Webhooks", as_=admin)
    assert other.token != app.token

    listed = (await org.gql(KEYS))["apiKeys"]
    assert [k["name"] for k in listed] == ["Webhooks", "Zapier"], "newest first"
    assert listed[1]["teams"] == [{"id": team}] and listed[0]["teams"] == []
    assert app.token not in json.dumps(listed) and other.token not in json.dumps(listed), "never shown again"
    fields = set(build_schema(Settings())._schema.type_map["ApiKey"].fields)
    assert fields == {"id", "name", "prefix", "scopes", "teams", "createdAt", "createdBy", "lastUsedAt", "revokedAt"}

    denied = await org.gql(CREATE, {"i": {"name": "Mine", "scopes": ["READ_CONVERSATIONS"]}}, as_=agent)
    assert denied["createApiKey"]["errors"][0]["code"] == "FORBIDDEN" and denied["createApiKey"]["key"] is None
    assert refused(await org.gql(KEYS, as_=agent, expect_errors=True)) == "FORBIDDEN"
    revoke = await org.gql(REVOKE, {"id": details["id"]}, as_=agent)
    assert revoke["revokeApiKey"]["errors"][0]["code"] == "FORBIDDEN"
    assert len((await org.gql(KEYS))["apiKeys"]) == 2


async def test_bad_inputs_are_refused_and_store_nothing(server):
    org = await new_org(server)
    team = await org.team("Support")
    elsewhere = await (await new_org(server, "Other")).team("Theirs")

    async def errors(name, scopes, team_ids=()):
        data = await org.gql(CREATE, {"i": {"name": name, "scopes": scopes, "teamIds": list(team_ids)}})
        assert data["createApiKey"]["key"] is None
        return [(e["code"], e["field"]) for e in data["createApiKey"]["errors"]]

    assert await errors(" ", ["READ_CONVERSATIONS"]) == [("INVALID_INPUT", "name")]
    assert await errors("Bot", []) == [("INVALID_INPUT", "scopes")]
    assert await errors("Bot", ["READ_CONVERSATIONS"], [team, "0" * 24]) == [("NOT_FOUND", "teamIds")]
    assert await errors("Bot", ["READ_CONVERSATIONS"], [elsewhere]) == [("NOT_FOUND", "teamIds")]
    assert await errors("Bot", ["READ_CONVERSATIONS"], ["not an id"]) == [("NOT_FOUND", "teamIds")]
    assert (await org.gql(KEYS))["apiKeys"] == []
    revoke = await org.gql(REVOKE, {"id": "0" * 24})
    assert revoke["revokeApiKey"]["errors"] == [{"code": "NOT_FOUND", "field": "id"}]


async def test_the_database_keeps_only_the_hash_of_a_key(server):
    org = await new_org(server)
    app, details = await create_key(org, ["READ_CONVERSATIONS"])
    stored = await server.db.api_keys.find_one({"_id": details["id"]})
    assert stored["key_hash"] == hashlib.sha256(app.token.encode()).hexdigest()
    assert stored["prefix"] == app.token[:8]
    secret = app.token[len("imb_") :]
    assert secret[4:] not in json.dumps(stored, default=str), "only the prefix of the key is kept in clear"


# --- using a key ---------------------------------------------------------------------------------


async def test_a_key_works_over_http_and_websocket(server):
    org, team, _, channel = await support_desk(server, "agent")
    app, _ = await create_key(org, ["READ_CONVERSATIONS"])
    cid = await opened(org, channel, "c1", "Hi")
    found = (await org.gql(CONVERSATION, {"id": cid}, as_=app))["conversation"]
    assert found["id"] == cid and found["customer"] == {"name": None}
    assert (await org.gql(LIST, as_=app))["conversations"]["totalCount"] == 1
    assert (await org.gql("{ organization { name } teams { id } }", as_=app)) == {
        "organization": {"name": "Acme"},
        "teams": [{"id": team}],
    }
    async with Subscriber(server.ws_url, app.token) as events, Subscriber(server.ws_url, app.token) as messages:
        await events.subscribe(EVENTS)
        await messages.subscribe(MESSAGE_ADDED)
        await server.subscribed(2)
        await org.customer_writes(channel, "c1", "more")
        event = (await events.next_data())["conversationEvents"]
        assert (event["kind"], event["conversationId"], event["message"]) == ("MESSAGE", cid, {"text": "more"})
        assert (await messages.next_data())["messageAdded"] == {"conversationId": cid, "text": "more"}


async def test_an_app_keeps_following_after_a_team_change(server):
    """A team change makes every subscriber re-read its teams: an app re-reads its key's."""
    org, team, _, channel = await support_desk(server, "agent")
    app, _ = await create_key(org, ["READ_CONVERSATIONS"], [team])
    newcomer = await org.member("newcomer")
    async with Subscriber(server.ws_url, app.token) as grouped, Subscriber(server.ws_url, app.token) as alone:
        await grouped.subscribe(EVENTS)  # live conversationEvents: served by a shared group
        await alone.subscribe(MESSAGE_ADDED)
        await server.subscribed(2)
        await org.add(team, newcomer)  # TEAMS_CHANGED
        await org.customer_writes(channel, "c1", "after the change")
        assert (await grouped.next_data())["conversationEvents"]["kind"] == "CREATED"
        assert (await alone.next_data())["messageAdded"]["text"] == "after the change"


async def test_last_used_at_is_written_at_most_once_a_minute(mongo_uri, data_dir):
    commands = CommandLog()
    clock = FakeClock()
    server = conftest.Server(conftest.make_settings(mongo_uri, data_dir), [commands], clock)
    await server.start()
    try:
        org = await new_org(server)
        app, _ = await create_key(org, ["READ_CONVERSATIONS"])

        def reads() -> int:
            return len([c for c in commands.on("api_keys") if c[0] == "findAndModify"])

        for _ in range(3):
            await org.gql("{ organization { id } }", as_=app)
        assert reads() == 1, "one read (and use mark) for three requests"
        first = (await org.gql(KEYS))["apiKeys"][0]["lastUsedAt"]
        assert first is not None
        clock.advance(61)
        await org.gql("{ organization { id } }", as_=app)
        await org.gql("{ organization { id } }", as_=app)
        assert reads() == 2, "read again (and marked) once the minute has passed"
        later = (await org.gql(KEYS))["apiKeys"][0]["lastUsedAt"]
        assert later > first
    finally:
        await server.stop()
        await conftest.drop_databases(mongo_uri, {server.settings.database})


# --- scopes ----------------------------------------------------------------------------------------


def every_root_field(root: str) -> list[str]:
    schema = build_schema(Settings())._schema
    return sorted(getattr(schema, f"{root.lower()}_type").fields)


def operation_for(root: str, name: str) -> str:
    """A document that selects ``root.name`` and passes validation whatever its arguments
    (each as a variable of its type: the variables' values are checked only when it runs)."""
    schema = build_schema(Settings())._schema
    field = getattr(schema, f"{root.lower()}_type").fields[name]
    variables = ", ".join(f"${arg}: {definition.type}" for arg, definition in field.args.items())
    arguments = ", ".join(f"{arg}: ${arg}" for arg in field.args)
    selection = " { __typename }" if isinstance(get_named_type(field.type), GraphQLObjectType) else ""
    return (
        f"{root.lower()}{f'({variables})' if variables else ''} "
        f"{{ {name}{f'({arguments})' if arguments else ''}{selection} }}"
    )


async def test_the_scope_map_names_only_fields_that_exist():
    for root, name in APP_FIELDS:
        assert name in every_root_field(root), (root, name)


async def test_a_read_only_app_can_mutate_nothing(server):
    org = await new_org(server)
    app, _ = await create_key(org, ["READ_CONVERSATIONS"])
    mutations = every_root_field("Mutation")
    assert {"sendMessage", "joinConversation", "createApiKey", "revokeApiKey", "login"} <= set(mutations)
    for name in mutations:
        body = await org.gql(operation_for("Mutation", name), as_=app, expect_errors=True)
        assert refused(body) == "FORBIDDEN", (name, body)
        assert f"`{name}`" in body["errors"][0]["message"]
    assert await server.db.api_keys.count_documents({}) == 1, "nothing written"


async def test_every_field_outside_the_scope_map_is_for_members_only(server):
    """An app with every scope still can't reach a root field the map doesn't open."""
    org = await new_org(server)
    app, _ = await create_key(org, ALL_SCOPES)
    for root in ("Query", "Mutation"):
        for name in every_root_field(root):
            body = await org.gql(operation_for(root, name), as_=app, expect_errors=True)
            if (root, name) in APP_FIELDS:
                assert not any(e.get("extensions", {}).get("code") == "FORBIDDEN" for e in body.get("errors", ())), body
            else:
                assert refused(body) == "FORBIDDEN", (root, name, body)
    async with Subscriber(server.ws_url, app.token) as sub:
        for name in every_root_field("Subscription"):
            await sub.subscribe(operation_for("Subscription", name))
            if ("Subscription", name) not in APP_FIELDS:
                message = await sub.receive()
                assert message["type"] == "error", message
                assert message["payload"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_each_field_needs_its_scope(server):
    org, team, _, channel = await support_desk(server, "agent")
    cid = await opened(org, channel, "c1")
    sender, _ = await create_key(org, ["SEND_MESSAGES"])
    reader, _ = await create_key(org, ["READ_CONVERSATIONS"])
    hooks, _ = await create_key(org, ["MANAGE_WEBHOOKS"])
    assert refused(await org.gql(CONVERSATION, {"id": cid}, as_=sender, expect_errors=True)) == "FORBIDDEN"
    assert refused(await org.gql(LIST, as_=hooks, expect_errors=True)) == "FORBIDDEN"
    # one closed field refuses the whole operation, the open ones included
    mixed = await org.gql("{ organization { id } members { id } }", as_=reader, expect_errors=True)
    assert refused(mixed) == "FORBIDDEN" and "`members` is for members only" in mixed["errors"][0]["message"]
    via_fragment = "query { ...F } fragment F on Query { conversations(first: 1) { totalCount } }"
    assert refused(await org.gql(via_fragment, as_=sender, expect_errors=True)) == "FORBIDDEN"
    assert (await org.gql(via_fragment, as_=reader))["conversations"]["totalCount"] == 1
    assert (await org.gql("{ messageTemplates { id } }", as_=sender)) == {"messageTemplates": []}
    async with Subscriber(server.ws_url, sender.token) as sub:
        await sub.subscribe(EVENTS)
        message = await sub.receive()
        assert message["type"] == "error" and message["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        # the socket stays: an allowed operation still runs on it (none, for this key), and a
        # member's identical subscription beside a refused one is served as before
        async with Subscriber(server.ws_url, org.owner.token) as member:
            await member.subscribe(EVENTS)
            await sub.subscribe(EVENTS)
            assert (await sub.receive())["type"] == "error"
            await server.subscribed(1)
            await org.customer_writes(channel, "c2", "hello")
            assert (await member.next_data())["conversationEvents"]["kind"] == "CREATED"
            assert await sub.nothing_within(0.3)


# --- teams -------------------------------------------------------------------------------------------


async def test_an_api_key_never_sees_beyond_its_teams(server):
    org = await new_org(server)
    mine, theirs = await org.team("Mine"), await org.team("Theirs", "GRAB")
    my_channel, their_channel = await org.channel(mine, name="Mine"), await org.channel(theirs, name="Theirs")
    app, _ = await create_key(org, ["READ_CONVERSATIONS", "SEND_MESSAGES"], [mine])
    visible = await opened(org, my_channel, "c1")
    hidden = await opened(org, their_channel, "c2")

    assert (await org.gql(CONVERSATION, {"id": hidden}, as_=app))["conversation"] is None
    page = (await org.gql(LIST, as_=app))["conversations"]
    assert [e["node"]["id"] for e in page["edges"]] == [visible] and page["totalCount"] == 1
    counts = {c["status"]: c["count"] for c in (await org.gql(COUNTS, as_=app))["conversationCounts"]}
    assert counts["REP_NEEDED"] == 1
    assert (await org.gql("{ teams { id } }", as_=app))["teams"] == [{"id": mine}]
    sent = await org.gql(SEND, {"i": {"conversationId": hidden, "kind": "TEXT", "text": "x"}}, as_=app)
    assert sent["sendMessage"]["errors"] == [{"code": "NOT_FOUND", "field": "id"}]
    filtered = await org.gql(
        "query($f: ConversationFilter) { conversations(filter: $f) { totalCount } }",
        {"f": {"teamIds": [theirs]}},
        as_=app,
    )
    assert filtered["conversations"]["totalCount"] == 0

    async with Subscriber(server.ws_url, app.token) as events, Subscriber(server.ws_url, app.token) as messages:
        await events.subscribe(EVENTS)
        await messages.subscribe("subscription($id: ID) { messageAdded(conversationId: $id) { conversationId } }")
        await server.subscribed(2)
        await org.customer_writes(their_channel, "c2", "not for you")
        await org.customer_writes(their_channel, "c3", "a new one, not for you either")
        await org.customer_writes(my_channel, "c1", "for you")
        assert (await events.next_data())["conversationEvents"]["conversationId"] == visible
        assert (await messages.next_data())["messageAdded"]["conversationId"] == visible
        assert await events.nothing_within(0.3) and await messages.nothing_within(0.1)
    async with Subscriber(server.ws_url, app.token) as direct:
        await direct.subscribe(
            "subscription($id: ID) { messageAdded(conversationId: $id) { conversationId } }", {"id": hidden}
        )
        await server.subscribed(1)
        await org.customer_writes(their_channel, "c2", "still not for you")
        assert await direct.nothing_within(0.5)


async def test_an_app_sees_its_grab_teams_conversations_even_once_grabbed(server):
    """Decided: an app sees every conversation of its teams, as a team admin does."""
    org, team, channel, alice, bob, _ = await grab_desk(server)
    app, _ = await create_key(org, ["READ_CONVERSATIONS"], [team])
    cid = await opened(org, channel, "c1")
    grab = "mutation($id: ID!) { grabConversation(id: $id) { errors { code } } }"
    async with Subscriber(server.ws_url, app.token) as sub:
        await sub.subscribe(EVENTS)
        await server.subscribed(1)
        assert (await org.gql(grab, {"id": cid}, as_=alice))["grabConversation"]["errors"] == []
        assert (await sub.next_data())["conversationEvents"]["kind"] == "GRABBED", "not HIDDEN"
    assert (await org.gql(CONVERSATION, {"id": cid}, as_=app))["conversation"]["owner"] == {"id": alice.id}
    assert (await org.gql(CONVERSATION, {"id": cid}, as_=bob))["conversation"] is None


async def test_a_whole_organization_key_sees_teams_created_later(server):
    org = await new_org(server)
    app, _ = await create_key(org, ["READ_CONVERSATIONS"])
    later = await org.team("Later")
    cid = await opened(org, await org.channel(later), "c1")
    assert (await org.gql(CONVERSATION, {"id": cid}, as_=app))["conversation"]["id"] == cid
    assert (await org.gql("{ teams { id } }", as_=app))["teams"] == [{"id": later}]


async def test_another_organizations_key_is_useless_here(server):
    org, _, _, channel = await support_desk(server, "agent")
    cid = await opened(org, channel, "c1")
    other = await new_org(server, "Other")
    app, _ = await create_key(other, ALL_SCOPES)
    ours, details = await create_key(org, ["READ_CONVERSATIONS"])
    assert (await org.gql(CONVERSATION, {"id": cid}, as_=app))["conversation"] is None
    assert (await org.gql(LIST, as_=app))["conversations"]["totalCount"] == 0
    sent = await org.gql(SEND, {"i": {"conversationId": cid, "kind": "TEXT", "text": "x"}}, as_=app)
    assert sent["sendMessage"]["errors"][0]["code"] == "NOT_FOUND"
    assert (await other.gql(KEYS))["apiKeys"][0]["name"] == "Zapier" and len((await other.gql(KEYS))["apiKeys"]) == 1
    revoke = await other.gql(REVOKE, {"id": details["id"]})
    assert revoke["revokeApiKey"]["errors"] == [{"code": "NOT_FOUND", "field": "id"}]
    assert (await org.gql(CONVERSATION, {"id": cid}, as_=ours))["conversation"]["id"] == cid, "still works"


# --- acting ----------------------------------------------------------------------------------------


async def test_an_app_never_joins_or_grabs(server):
    org, team, channel, *_ = await grab_desk(server)
    app, _ = await create_key(org, ALL_SCOPES, [team])
    cid = await opened(org, channel, "c1")
    for name in ("joinConversation", "grabConversation", "leaveConversation", "closeConversation"):
        body = await org.gql(
            f"mutation($id: ID!) {{ {name}(id: $id) {{ errors {{ code }} }} }}",
            {"id": cid},
            as_=app,
            expect_errors=True,
        )
        assert refused(body) == "FORBIDDEN", (name, body)
    # and the rules themselves refuse, whatever the scope map says
    services = server.services
    viewer = await services.api_keys.viewer(app.token)
    for use_case in (rooms.join_conversation, rooms.grab_conversation):
        with pytest.raises(Refused) as refusal:
            await use_case(services.store, services.events, viewer, cid, services.clock(), services.settings.thresholds)
        assert refusal.value.code.value == "FORBIDDEN"
    stored = await server.db.conversations.find_one({"_id": cid})
    assert stored.get("participants", []) == [] and stored.get("owner_id") is None


async def test_an_app_sends_without_joining_and_is_shown_as_the_sender(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    app, details = await create_key(org, ["READ_CONVERSATIONS", "SEND_MESSAGES"], [team], name="Order bot")
    cid = await opened(org, channel, "c1", "Where is my order?")
    async with Subscriber(server.ws_url, agent.token) as sub:
        await sub.subscribe(EVENTS)
        await server.subscribed(1)
        sent = (await org.gql(SEND, {"i": {"conversationId": cid, "kind": "TEXT", "text": "Shipped."}}, as_=app))[
            "sendMessage"
        ]
        assert sent["errors"] == []
        app_sender = {"kind": "APP", "member": None, "app": {"id": details["id"], "name": "Order bot"}}
        assert sent["message"]["sender"] == app_sender
        assert sent["conversation"]["status"] == "REPLIED"
        event = (await sub.next_data())["conversationEvents"]
        assert event["kind"] == "MESSAGE" and event["actor"] is None
        assert event["app"] == {"id": details["id"], "name": "Order bot"}
    seen = (await org.gql(MESSAGES, {"id": cid}, as_=agent))["conversation"]
    assert seen["lastMessage"] == {"text": "Shipped.", "sender": {"kind": "APP", "app": {"name": "Order bot"}}}
    assert seen["messages"]["edges"][-1]["node"]["sender"] == app_sender
    stored = await server.db.conversations.find_one({"_id": cid})
    assert stored.get("participants", []) == [], "it never joined"
    # revoked, its messages still name it
    await org.gql(REVOKE, {"id": details["id"]})
    assert (await org.gql(MESSAGES, {"id": cid}, as_=agent))["conversation"]["lastMessage"]["sender"]["app"] == {
        "name": "Order bot"
    }


async def test_an_app_may_not_send_in_a_closed_conversation(server):
    org, team, (agent,), channel = await support_desk(server, "agent")
    app, _ = await create_key(org, ["SEND_MESSAGES"])
    cid = await opened(org, channel, "c1")
    await org.gql("mutation($id: ID!) { closeConversation(id: $id) { errors { code } } }", {"id": cid})
    sent = await org.gql(SEND, {"i": {"conversationId": cid, "kind": "TEXT", "text": "late"}}, as_=app)
    assert sent["sendMessage"]["errors"] == [{"code": "CONVERSATION_CLOSED", "field": None}]
    assert await server.db.messages.count_documents({"conversation_id": cid}) == 1


async def test_an_app_uploads_and_downloads_files_with_its_key(server):
    org = await new_org(server)
    mine, theirs = await org.team("Mine"), await org.team("Theirs")
    channel = await org.channel(mine, name="Mine")
    app, _ = await create_key(org, ["READ_CONVERSATIONS", "SEND_MESSAGES"], [mine])
    sender_only, _ = await create_key(org, ["SEND_MESSAGES"], [mine])
    cid = await opened(org, channel, "c1")
    operations = {
        "query": SEND.replace("text sender", "text attachments { url } sender"),
        "variables": {"i": {"conversationId": cid, "kind": "ATTACHMENT", "attachments": [None]}},
    }
    response = await server.http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.i.attachments.0"]})},
        files={"0": ("a.txt", b"file body", "text/plain")},
        headers={"Authorization": f"Bearer {app.token}"},
    )
    sent = response.json()["data"]["sendMessage"]
    assert sent["errors"] == [] and sent["message"]["sender"]["kind"] == "APP"
    url = sent["message"]["attachments"][0]["url"]
    assert (await server.http.get(url, headers={"Authorization": f"Bearer {app.token}"})).content == b"file body"
    assert (await server.http.get(url, headers={"Authorization": f"Bearer {sender_only.token}"})).status_code == 403
    outsider, _ = await create_key(org, ["READ_CONVERSATIONS"], [theirs])
    assert (await server.http.get(url, headers={"Authorization": f"Bearer {outsider.token}"})).status_code == 404
    bogus = "imb_" + "A" * 43
    assert (await server.http.get(url, headers={"Authorization": f"Bearer {bogus}"})).status_code == 401
    refused_upload = await server.http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.i.attachments.0"]})},
        files={"0": ("a.txt", b"file body", "text/plain")},
        headers={"Authorization": f"Bearer {bogus}"},
    )
    assert refused(refused_upload.json()) == "UNAUTHENTICATED"


# --- revocation ---------------------------------------------------------------------------------------


async def test_a_revoked_key_is_refused_at_once_on_every_instance_and_its_sockets_closed(make_server):
    a = await make_server()
    b = await make_server(database=a.settings.database)
    org, team, _, channel = await support_desk(a, "agent")
    app, details = await create_key(org, ["READ_CONVERSATIONS"])
    cid = await opened(org, channel, "c1")
    on_b = await b.gql(CONVERSATION, {"id": cid}, app.token)  # b knows the key now, from its cache
    assert on_b["conversation"]["id"] == cid
    async with (
        Subscriber(a.ws_url, app.token) as sub_a,
        Subscriber(b.ws_url, app.token) as sub_b,
        Subscriber(b.ws_url, org.owner.token) as member_b,
    ):
        for sub in (sub_a, sub_b, member_b):
            await sub.subscribe(EVENTS)
        await a.subscribed(1)
        await b.subscribed(2, 1)  # the app's and the member's: one shared stream (same visibility)
        revoked = (await org.gql(REVOKE, {"id": details["id"]}))["revokeApiKey"]
        assert revoked["errors"] == [] and revoked["apiKey"]["revokedAt"] is not None
        started = time.monotonic()
        assert refused(await a.gql(LIST, token=app.token, expect_errors=True)) == "UNAUTHENTICATED", "at once"
        while "errors" not in await b.gql(LIST, token=app.token, expect_errors=True):
            assert time.monotonic() - started < 1, "still accepted on the other instance after 1 s"
            await asyncio.sleep(0.02)
        for sub in (sub_a, sub_b):
            await asyncio.wait_for(sub.socket.wait_closed(), timeout=2)
            assert time.monotonic() - started < 1, "a socket of the revoked key still open after 1 s"
            assert sub.socket.close_code == 4401 and sub.socket.close_reason == "API key revoked"
        # the member's socket beside it is untouched
        await org.customer_writes(channel, "c2", "still here")
        assert (await member_b.next_data())["conversationEvents"]["kind"] == "CREATED"
    for server in (a, b):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await Subscriber(server.ws_url, app.token).connect()
        assert closed.value.rcvd.code == 4403
    assert (await org.gql(KEYS))["apiKeys"] == []
    again = (await org.gql(REVOKE, {"id": details["id"]}))["revokeApiKey"]
    assert again["errors"] == [] and again["apiKey"]["revokedAt"] == revoked["apiKey"]["revokedAt"]


async def test_a_socket_opened_while_its_key_is_being_revoked_is_closed_too(server):
    org = await new_org(server)
    app, details = await create_key(org, ["READ_CONVERSATIONS"])
    viewer = await server.services.api_keys.viewer(app.token)
    assert viewer is not None
    server.services.api_keys.revoked(details["id"])  # as if the news arrived between lookup and watch
    closed = []
    server.services.api_keys.on_revoked(details["id"], lambda: closed.append(True))
    await asyncio.sleep(0)
    assert closed == [True]
    assert await server.services.api_keys.viewer(app.token) is None
    assert await server.services.api_keys.reload(viewer) is None


# --- refused keys ----------------------------------------------------------------------------------------


class CommandLog(monitoring.CommandListener):
    """Commands sent to MongoDB, with the collection each names."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.seen.append((event.command_name, target if isinstance(target, str) else ""))

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass

    def on(self, *collections: str) -> list[tuple[str, str]]:
        return [c for c in self.seen if c[1] in collections]


MALFORMED = [
    "imb_",
    "imb_short",
    "imb_" + "!" * 43,
    "imb_" + "a" * 42,
    "imb_" + "a" * 44,
    "imb_" + "a" * 42 + "=",
    "IMB_" + "a" * 43,
]


async def test_malformed_keys_are_refused_without_a_database_read(mongo_uri, data_dir):
    commands = CommandLog()
    server = conftest.Server(conftest.make_settings(mongo_uri, data_dir), [commands])
    await server.start()
    try:
        await new_org(server)
        before = len(commands.on("api_keys", "members", "teams"))
        for token in MALFORMED:
            assert refused(await server.gql(LIST, token=token, expect_errors=True)) == "UNAUTHENTICATED", token
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await Subscriber(server.ws_url, token).connect()
            assert closed.value.rcvd.code == 4403
        assert commands.on("api_keys", "members", "teams")[before:] == []
        unknown = "imb_" + "B" * 43  # well formed: read once, then remembered as unknown
        for _ in range(3):
            assert refused(await server.gql(LIST, token=unknown, expect_errors=True)) == "UNAUTHENTICATED"
        assert len(commands.on("api_keys", "members", "teams")[before:]) == 1
    finally:
        await server.stop()
        await conftest.drop_databases(mongo_uri, {server.settings.database})
