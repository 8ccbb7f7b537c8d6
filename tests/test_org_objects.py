"""Issue 17 item 9 (second half): teams, channels and message templates change and go.

Through GraphQL, the inbound webhooks and WebSockets against the real app: what each
mutation does that a user would notice, and every refusal (changing nothing).
"""

from __future__ import annotations

from tests.test_meta_channels import graph, open_desk  # noqa: F401 - `graph` is the fake Graph API fixture
from tests.test_widget_api import session_response
from tests.world import Org, Person, grab_desk, new_org, support_desk
from tests.ws import Subscriber

UPDATE_TEMPLATE = """mutation($i: UpdateMessageTemplateInput!) { updateMessageTemplate(input: $i) {
    template { id name body channel whatsappName whatsappLanguage } errors { code field } } }"""
DELETE_TEMPLATE = """mutation($id: ID!) { deleteMessageTemplate(id: $id) { deletedTemplateId errors { code } } }"""
CREATE_TEMPLATE = """mutation($i: CreateMessageTemplateInput!) { createMessageTemplate(input: $i) {
    template { id } } }"""
TEMPLATES = "{ messageTemplates { id name body channel } }"
RENAME = """mutation($i: RenameTeamInput!) { renameTeam(input: $i) { team { id name } errors { code field } } }"""
MODE = """mutation($i: SetTeamModeInput!) { setTeamMode(input: $i) { team { id mode } errors { code field } } }"""
DELETE_TEAM = """mutation($i: DeleteTeamInput!) { deleteTeam(input: $i) { deletedTeamId transferredConversations
    movedConversations movedChannels errors { code field } } }"""
CHANNEL_ACTION = """mutation($id: ID!) {{ {name}(id: $id) {{
    channel {{ id disabledAt }} errors {{ code field }} }} }}"""
ROTATE = """mutation($id: ID!) { rotateIngestKey(id: $id) { channel { id } ingestKey errors { code field } } }"""
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) { message { id } errors { code } } }"""
NOTE = """mutation($i: AddNoteInput!) { addNote(input: $i) { errors { code } } }"""
SEEN = """query($id: ID!) { conversation(id: $id) { status team { id } owner { id } representatives { id }
    messages(last: 3) { edges { node { kind text } } } } }"""
RACE_GRAB = "mutation($id: ID!) { grabConversation(id: $id) { errors { code } } }"
EVENTS = "subscription { conversationEvents { kind conversationId } }"


def codes(payload: dict) -> list[str]:
    return [e["code"] for e in payload["errors"]]


async def act(org: Org, action: str, cid: str, person: Person) -> None:
    data = await org.gql(f"mutation($id: ID!) {{ {action}(id: $id) {{ errors {{ code }} }} }}", {"id": cid}, as_=person)
    assert data[action]["errors"] == [], (action, data)


async def seen(org: Org, cid: str, person: Person | None = None) -> dict | None:
    return (await org.gql(SEEN, {"id": cid}, as_=person))["conversation"]


async def gql(org: Org, query: str, variables: dict, as_: Person | None = None) -> dict:
    data = await org.gql(query, variables, as_=as_)
    [payload] = data.values()
    return payload


# --- message templates ----------------------------------------------------------------------------


async def test_admins_edit_and_delete_templates_and_sent_messages_keep_their_text(server):
    org, team, (ann,), channel = await support_desk(server, "ann")
    lead = await org.member("lead")
    await org.add(team, lead, "ADMIN")
    other = await new_org(server, "Other")
    body = {"name": "Thanks", "body": "Thanks {{name}}!", "channel": "LINE"}
    tid = (await org.gql(CREATE_TEMPLATE, {"i": body}))["createMessageTemplate"]["template"]["id"]
    before = await org.gql(TEMPLATES)

    # refusals change nothing
    assert codes(await gql(org, UPDATE_TEMPLATE, {"i": {"id": tid, "name": "Mine"}}, ann)) == ["FORBIDDEN"]
    assert codes(await gql(other, UPDATE_TEMPLATE, {"i": {"id": tid, "name": "Theirs"}})) == ["NOT_FOUND"]
    assert codes(await gql(org, UPDATE_TEMPLATE, {"i": {"id": "nope", "name": "x"}})) == ["NOT_FOUND"]
    for bad, field in (
        ({"name": None}, "name"),
        ({"name": " "}, "name"),
        ({"body": ""}, "body"),
        ({"body": " ".join(f"{{{{v{i}}}}}" for i in range(51))}, "body"),
        ({"whatsappName": "Not Valid"}, "whatsappName"),
        ({"whatsappLanguage": "english"}, "whatsappLanguage"),
    ):
        refused = await gql(org, UPDATE_TEMPLATE, {"i": {"id": tid, "name": "Fine", **bad}}, lead)
        assert refused["errors"] == [{"code": "INVALID_INPUT", "field": field}], bad
    assert await org.gql(TEMPLATES) == before

    # a team admin edits it; omitted fields are kept, null clears the channel
    updated = await gql(org, UPDATE_TEMPLATE, {"i": {"id": tid, "body": "Thank you, {{name}}.", "channel": None}}, lead)
    assert updated == {
        "template": {
            "id": tid,
            "name": "Thanks",
            "body": "Thank you, {{name}}.",
            "channel": None,
            "whatsappName": "Thanks",  # the defaults: its name, en_US
            "whatsappLanguage": "en_US",
        },
        "errors": [],
    }

    cid = (await org.customer_writes(channel, "c1", "Hi"))["conversationId"]
    await act(org, "joinConversation", cid, ann)
    sent = await gql(org, SEND, {"i": {"conversationId": cid, "kind": "TEMPLATE", "templateId": tid,
                                       "variables": {"name": "Cy"}}}, ann)  # fmt: skip
    assert sent["errors"] == []

    assert codes(await gql(org, DELETE_TEMPLATE, {"id": tid}, ann)) == ["FORBIDDEN"]
    assert codes(await gql(other, DELETE_TEMPLATE, {"id": tid})) == ["NOT_FOUND"]
    assert await gql(org, DELETE_TEMPLATE, {"id": tid}, lead) == {"deletedTemplateId": tid, "errors": []}
    assert await org.gql(TEMPLATES) == {"messageTemplates": []}
    assert codes(await gql(org, DELETE_TEMPLATE, {"id": tid})) == ["NOT_FOUND"]
    assert codes(await gql(org, UPDATE_TEMPLATE, {"i": {"id": tid, "name": "Back"}})) == ["NOT_FOUND"]
    # the message sent with it keeps its text; sending it again is refused
    edges = (await seen(org, cid, ann))["messages"]["edges"]
    assert edges[-1]["node"] == {"kind": "TEMPLATE", "text": "Thank you, Cy."}
    again = {"i": {"conversationId": cid, "kind": "TEMPLATE", "templateId": tid, "variables": {"name": "Cy"}}}
    assert codes(await gql(org, SEND, again, ann)) == ["NOT_FOUND"]


# --- teams ----------------------------------------------------------------------------------------


async def test_a_team_is_renamed_and_switched_between_grab_and_collaboration(server):
    org, grab, channel, alice, bob, boss = await grab_desk(server, "LINE")
    sales = await org.team("Sales")
    other = await new_org(server, "Other")

    assert codes(await gql(org, RENAME, {"i": {"id": grab, "name": "Desk"}}, boss)) == ["FORBIDDEN"]  # team admin
    assert codes(await gql(other, RENAME, {"i": {"id": grab, "name": "Desk"}})) == ["NOT_FOUND"]
    assert (await gql(org, RENAME, {"i": {"id": grab, "name": "Sales"}}))["errors"] == [
        {"code": "ALREADY_EXISTS", "field": "name"}
    ]
    assert (await gql(org, RENAME, {"i": {"id": grab, "name": "\x07"}}))["errors"] == [
        {"code": "INVALID_INPUT", "field": "name"}
    ]
    assert codes(await gql(org, MODE, {"i": {"id": grab, "mode": "COLLABORATION"}}, alice)) == ["FORBIDDEN"]
    assert codes(await gql(other, MODE, {"i": {"id": grab, "mode": "COLLABORATION"}})) == ["NOT_FOUND"]
    teams = await org.gql("{ teams { id name mode } }")
    assert {"id": grab, "name": "Grabbers", "mode": "GRAB"} in teams["teams"]

    renamed = await gql(org, RENAME, {"i": {"id": grab, "name": "Front desk"}})
    assert renamed == {"team": {"id": grab, "name": "Front desk"}, "errors": []}
    assert {"id": sales, "name": "Sales", "mode": "COLLABORATION"} in (await org.gql("{ teams { id name mode } }"))[
        "teams"
    ]

    cid = (await org.customer_writes(channel, "c1", "Hi"))["conversationId"]
    await act(org, "grabConversation", cid, alice)
    assert await seen(org, cid, bob) is None  # grabbed: private to alice and the admins

    async with Subscriber(server.ws_url, bob.token) as watcher:
        await watcher.subscribe(EVENTS)
        await server.subscribed(1)
        # GRAB -> COLLABORATION: the grabbed conversation keeps its owner and room, and the team sees it
        switched = await gql(org, MODE, {"i": {"id": grab, "mode": "COLLABORATION"}})
        assert switched == {"team": {"id": grab, "mode": "COLLABORATION"}, "errors": []}
        shown = await seen(org, cid, bob)
        assert shown["owner"] == {"id": alice.id} and shown["representatives"] == [{"id": alice.id}]
        await org.customer_writes(channel, "c1", "Anyone?")  # bob's open subscription follows at once
        assert (await watcher.next_data())["conversationEvents"] == {"kind": "MESSAGE", "conversationId": cid}
    refused = await org.gql(RACE_GRAB, {"id": cid}, as_=bob)
    assert codes(refused["grabConversation"]) == ["NOT_GRAB_TEAM"]
    await act(org, "joinConversation", cid, bob)  # a collaborator joins without grabbing

    # COLLABORATION -> GRAB: alice's again, and bob leaves its room; an unowned one is offered to grabbing
    assert (await gql(org, MODE, {"i": {"id": grab, "mode": "GRAB"}}))["errors"] == []
    assert await seen(org, cid, bob) is None
    again = await seen(org, cid, alice)
    assert again["owner"] == {"id": alice.id} and again["representatives"] == [{"id": alice.id}]
    assert again["messages"]["edges"][-1]["node"] == {
        "kind": "SYSTEM",
        "text": "bob left the conversation (Owner made the team a GRAB team: it is its owner's).",
    }
    unowned = (await org.customer_writes(channel, "c2", "Hello"))["conversationId"]
    await act(org, "grabConversation", unowned, bob)


async def test_a_team_is_deleted_only_once_its_conversations_and_channels_have_somewhere_to_go(server):
    org, support, (ann,), channel = await support_desk(server, "ann")
    sales = await org.team("Sales")
    ben = await org.member("ben")
    await org.add(sales, ben)
    other = await new_org(server, "Other")
    still_open = (await org.customer_writes(channel, "c1", "Hi"))["conversationId"]
    await act(org, "joinConversation", still_open, ann)
    closed = (await org.customer_writes(channel, "c2", "Bye"))["conversationId"]
    await act(org, "joinConversation", closed, ann)
    await act(org, "closeConversation", closed, ann)

    # refusals change nothing
    assert codes(await gql(org, DELETE_TEAM, {"i": {"id": support}}, ann)) == ["FORBIDDEN"]
    assert codes(await gql(other, DELETE_TEAM, {"i": {"id": support}})) == ["NOT_FOUND"]
    for i, error in (
        ({"id": support}, {"code": "TEAM_NOT_EMPTY", "field": "transferToTeamId"}),
        ({"id": support, "transferToTeamId": support}, {"code": "INVALID_INPUT", "field": "transferToTeamId"}),
        ({"id": support, "transferToTeamId": "f" * 24}, {"code": "NOT_FOUND", "field": "transferToTeamId"}),
    ):
        assert (await gql(org, DELETE_TEAM, {"i": i}))["errors"] == [error], i
    assert (await seen(org, still_open, ann))["team"] == {"id": support}
    assert await server.db.teams.count_documents({"_id": support}) == 1

    async with Subscriber(server.ws_url, ann.token) as leaving:
        await leaving.subscribe(EVENTS)
        await server.subscribed(1)
        done = await gql(org, DELETE_TEAM, {"i": {"id": support, "transferToTeamId": sales}})
        assert done == {
            "deletedTeamId": support,
            "transferredConversations": 1,
            "movedConversations": 1,
            "movedChannels": 1,
            "errors": [],
        }
        assert (await leaving.next_data())["conversationEvents"] == {"kind": "HIDDEN", "conversationId": still_open}
    assert [t["id"] for t in (await org.gql("{ teams { id } }"))["teams"]] == [sales]
    # ann no longer sees what her team had; ben's team has it all, the open one with its transfer line
    for cid in (still_open, closed):
        assert await seen(org, cid, ann) is None
        assert (await seen(org, cid, ben))["team"] == {"id": sales}
    moved = await seen(org, still_open, ben)
    assert moved["status"] == "REP_NEEDED" and moved["representatives"] == []
    assert moved["messages"]["edges"][-1]["node"]["text"] == "Owner transferred the conversation to Sales."
    # the channel now brings customers to Sales, and a closed conversation reopens there
    new = (await org.customer_writes(channel, "c3", "New here"))["conversationId"]
    assert (await seen(org, new, ben))["team"] == {"id": sales}
    await org.customer_writes(channel, "c2", "Me again")
    assert (await seen(org, closed, ben))["status"] == "REP_NEEDED"

    empty = await org.team("Empty")
    assert (await gql(org, DELETE_TEAM, {"i": {"id": empty}}))["errors"] == []
    assert codes(await gql(org, DELETE_TEAM, {"i": {"id": empty}})) == ["NOT_FOUND"]


# --- channels -------------------------------------------------------------------------------------


async def test_a_disabled_channel_takes_nothing_in_and_sends_nothing_until_enabled(server):
    org, _, (ann,), channel = await support_desk(server, "ann")
    other = await new_org(server, "Other")
    cid = (await org.customer_writes(channel, "c1", "Hi"))["conversationId"]
    await act(org, "joinConversation", cid, ann)
    disable, enable = CHANNEL_ACTION.format(name="disableChannel"), CHANNEL_ACTION.format(name="enableChannel")

    for query in (disable, enable, ROTATE):
        assert codes(await gql(org, query, {"id": channel.id}, ann)) == ["FORBIDDEN"]
        assert codes(await gql(other, query, {"id": channel.id})) == ["NOT_FOUND"]
        assert codes(await gql(org, query, {"id": "nope"})) == ["NOT_FOUND"]
    disabled = await gql(org, disable, {"id": channel.id})
    assert disabled["errors"] == [] and disabled["channel"]["disabledAt"]
    assert (await gql(org, disable, {"id": channel.id}))["channel"] == disabled["channel"]  # twice: no change

    stored = await server.db.messages.count_documents({})
    response = await server.inbound(channel.id, channel.key, {"customer": {"externalId": "c1"}, "text": "Hello?"})
    assert response.status_code == 403
    refusal = {"error": "The channel 'Site' is disabled: nothing was stored.", "code": "CHANNEL_DISABLED"}
    assert response.json() == refusal
    response = await server.inbound(channel.id, channel.key, {"customer": {"externalId": "new"}, "text": "Hi"})
    assert response.status_code == 403
    presence = await server.presence(channel.id, channel.key, {"customer": {"externalId": "c1"}, "online": True})
    assert presence.status_code == 403
    refused = await gql(org, SEND, {"i": {"conversationId": cid, "text": "Still here"}}, ann)
    assert codes(refused) == ["CHANNEL_DISABLED"]
    assert await server.db.messages.count_documents({}) == stored
    assert await server.db.customers.count_documents({"external_id": "new"}) == 0
    assert (await gql(org, NOTE, {"i": {"conversationId": cid, "text": "Channel paused"}}, ann))["errors"] == []

    enabled = await gql(org, enable, {"id": channel.id})
    assert enabled == {"channel": {"id": channel.id, "disabledAt": None}, "errors": []}
    await org.customer_writes(channel, "c1", "Back")
    assert (await gql(org, SEND, {"i": {"conversationId": cid, "text": "Welcome back"}}, ann))["errors"] == []

    # handed to another team: new conversations go there, the open one stays
    sales = await org.team("Sales")
    update = """mutation($i: UpdateChannelInput!) { updateChannel(input: $i) {
        channel { teamId } errors { code field } } }"""
    assert (await gql(org, update, {"i": {"id": channel.id, "teamId": "f" * 24}}))["errors"] == [
        {"code": "NOT_FOUND", "field": "teamId"}
    ]
    assert codes(await gql(org, update, {"i": {"id": channel.id, "teamId": sales}}, ann)) == ["FORBIDDEN"]
    assert (await gql(org, update, {"i": {"id": channel.id, "teamId": sales}}))["channel"] == {"teamId": sales}
    moved = (await org.customer_writes(channel, "c9", "Hello sales"))["conversationId"]
    assert (await seen(org, moved))["team"] == {"id": sales}
    assert (await seen(org, cid))["team"] != {"id": sales}

    # a new ingest key, shown once: the old one stops working at once
    rotated = await gql(org, ROTATE, {"id": channel.id})
    new_key = rotated["ingestKey"]
    assert rotated["errors"] == [] and new_key.startswith("ik_") and new_key != channel.key
    body = {"customer": {"externalId": "c1"}, "text": "Which key?"}
    assert (await server.inbound(channel.id, channel.key, body)).status_code == 401
    assert (await server.inbound(channel.id, new_key, body)).status_code == 202
    doc = await server.db.channels.find_one({"_id": channel.id})
    assert new_key not in str(doc)  # only its hash is kept


async def test_a_disabled_widget_ends_its_sessions(server):
    org = await new_org(server)
    team = await org.team("Web")
    connect = """mutation($i: ConnectChannelInput!) { connectChannel(input: $i) { channel { id } widgetKey } }"""
    data = await org.gql(connect, {"i": {"type": "WEB_WIDGET", "name": "Shop", "teamId": team,
                                         "allowedOrigins": ["https://shop.example"]}})  # fmt: skip
    channel_id, key = data["connectChannel"]["channel"]["id"], data["connectChannel"]["widgetKey"]
    assert (await session_response(server, key, "https://shop.example")).status_code in (200, 201)
    await gql(org, CHANNEL_ACTION.format(name="disableChannel"), {"id": channel_id})
    refused = await session_response(server, key, "https://shop.example")
    assert refused.status_code == 404 and "disabled" in refused.text


async def test_a_disabled_whatsapp_channel_drops_webhooks_and_fails_queued_replies(make_server, graph):  # noqa: F811
    desk = await open_desk(make_server, graph)
    org = desk.org
    cid = await desk.whatsapp_in(text="Hi")
    desk.graph.fail_throttled(retry_after=0.5)
    reply = await desk.reply(cid, "On it")
    await desk.wait_messages(cid, lambda ms: any(m["deliveries"] and m["deliveries"][0]["attempts"] == 1 for m in ms))
    assert (await gql(org, CHANNEL_ACTION.format(name="disableChannel"), {"id": desk.whatsapp}))["errors"] == []
    failed = await desk.wait_delivery(cid, reply["id"], "FAILED")
    assert failed["errorCode"] == "CHANNEL_DISABLED" and failed["attempts"] == 2  # throttled, then refused
    assert len(desk.graph.sent_whatsapp()) == 0

    # Meta's webhook is answered 200 (no endless redelivery) and the message dropped
    stored = await desk.server.db.messages.count_documents({"conversation_id": cid})
    await desk.whatsapp_in(text="Hello??")
    assert await desk.server.db.messages.count_documents({"conversation_id": cid}) == stored
