"""Accounts, onboarding, organization isolation, inbound messages and presence."""

import asyncio

import pytest

from tests.world import PASSWORD, login, new_org

CONVERSATION = """query($id: ID!) { conversation(id: $id) { id status customer { name email }
    messages { edges { node { text sender { kind } } } } } }"""


async def test_unauthenticated_calls_are_refused_without_data(server):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
        response = await server.http.post("/graphql", json={"query": "{ me { id } }"}, headers=headers)
        body = response.json()
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_wrong_password_and_unknown_email_look_the_same(server):
    org = await new_org(server)
    answers = []
    for email in (org.owner.email, "nobody@example.com"):
        data = await server.gql(
            """mutation($i: LoginInput!) { login(input: $i) { token errors { code } } }""",
            {"i": {"email": email, "password": "wrong password"}},
        )
        answers.append(data["login"])
    assert answers[0] == answers[1] == {"token": None, "errors": [{"code": "INVALID_CREDENTIALS"}]}


async def test_member_gets_forbidden_on_onboarding_mutations(server):
    org = await new_org(server)
    team = await org.team("Support")
    agent = await org.member("agent")
    attempts = {
        "inviteMember": ("InviteMemberInput", {"email": "x@example.com", "name": "X", "password": PASSWORD}),
        "createTeam": ("CreateTeamInput", {"name": "Other", "mode": "GRAB"}),
        "addTeamMember": ("AddTeamMemberInput", {"teamId": team, "memberId": agent.id}),
        "removeTeamMember": ("RemoveTeamMemberInput", {"teamId": team, "memberId": agent.id}),
        "connectChannel": ("ConnectChannelInput", {"type": "LINE", "name": "L", "teamId": team}),
    }
    for name, (input_type, value) in attempts.items():
        data = await org.gql(
            f"mutation($i: {input_type}!) {{ {name}(input: $i) {{ errors {{ code }} }} }}", {"i": value}, as_=agent
        )
        assert data[name]["errors"] == [{"code": "FORBIDDEN"}], name
    teams = await org.gql("{ teams { name } channels { id } members { email } }")
    assert teams["teams"] == [{"name": "Support"}] and teams["channels"] == []
    assert "x@example.com" not in [m["email"] for m in teams["members"]]


async def test_duplicate_email_and_bad_input_are_typed_errors(server):
    org = await new_org(server)
    await org.member("dup")
    data = await org.gql(
        """mutation($i: InviteMemberInput!) { inviteMember(input: $i) {
        member { id } errors { code field } } }""",
        {"i": {"email": org.owner.email, "name": "Again", "password": PASSWORD}},
    )
    assert data["inviteMember"] == {"member": None, "errors": [{"code": "ALREADY_EXISTS", "field": "email"}]}
    data = await org.gql(
        """mutation($i: InviteMemberInput!) { inviteMember(input: $i) {
        errors { code field } } }""",
        {"i": {"email": "not-an-email", "name": "A", "password": PASSWORD}},
    )
    assert data["inviteMember"]["errors"] == [{"code": "INVALID_INPUT", "field": "email"}]


async def test_teams_list_members_with_team_roles(server):
    org = await new_org(server)
    team = await org.team("Sales", "GRAB")
    rep, boss = await org.member("rep"), await org.member("boss")
    await org.add(team, rep)
    await org.add(team, boss, "ADMIN")
    data = await org.gql("{ teams { id name mode members { role member { id } } } }")
    assert data["teams"][0]["mode"] == "GRAB"
    roles = {m["member"]["id"]: m["role"] for m in data["teams"][0]["members"]}
    assert roles == {rep.id: "REPRESENTATIVE", boss.id: "ADMIN"}
    # a plain member sees only the teams they belong to
    await org.team("Hidden")
    mine = await org.gql("{ teams { name } }", as_=rep)
    assert mine["teams"] == [{"name": "Sales"}]


async def test_two_organizations_are_isolated(server):
    a, b = await new_org(server, "A"), await new_org(server, "B")
    team_a = await a.team("Support")
    channel_a = await a.channel(team_a)
    receipt = await a.customer_writes(channel_a, "c1", "secret of A")
    team_b = await b.team("Support")
    # B's owner sees nothing of A, and can't act on A's objects
    assert (await b.gql(CONVERSATION, {"id": receipt["conversationId"]}))["conversation"] is None
    assert (await b.gql("{ conversations { totalCount } }"))["conversations"]["totalCount"] == 0
    data = await b.gql(
        "mutation($id: ID!) { joinConversation(id: $id) { errors { code } } }", {"id": receipt["conversationId"]}
    )
    assert data["joinConversation"]["errors"] == [{"code": "NOT_FOUND"}]
    data = await b.gql(
        """mutation($i: AddTeamMemberInput!) { addTeamMember(input: $i) { errors { code } } }""",
        {"i": {"teamId": team_a, "memberId": b.owner.id}},
    )
    assert data["addTeamMember"]["errors"] == [{"code": "NOT_FOUND"}]
    data = await a.gql(
        """mutation($i: AddTeamMemberInput!) { addTeamMember(input: $i) { errors { code } } }""",
        {"i": {"teamId": team_a, "memberId": b.owner.id}},
    )
    assert data["addTeamMember"]["errors"] == [{"code": "NOT_FOUND"}]
    data = await b.gql(
        """mutation($i: UpdateCustomerInput!) { updateCustomer(input: $i) { errors { code } } }""",
        {"i": {"id": receipt["conversationId"], "name": "pwned"}},
    )
    assert data["updateCustomer"]["errors"] == [{"code": "NOT_FOUND"}]
    assert [t["name"] for t in (await b.gql("{ teams { name } }"))["teams"]] == ["Support"]
    assert team_b != team_a


async def test_inbound_creates_then_appends_and_deduplicates(server):
    org = await new_org(server)
    channel = await org.channel(await org.team("Support"))
    first = await org.customer_writes(
        channel, "c1", "Hi", messageId="p1", customer={"name": "Ann", "email": "ANN@example.com"}
    )
    second = await org.customer_writes(channel, "c1", "Anyone?", messageId="p2")
    again = await org.customer_writes(channel, "c1", "Hi", messageId="p1")
    assert first["duplicate"] is False and second["duplicate"] is False
    assert second["conversationId"] == first["conversationId"]
    assert again == {"conversationId": first["conversationId"], "messageId": first["messageId"], "duplicate": True}
    data = await org.gql(CONVERSATION, {"id": first["conversationId"]})
    conversation = data["conversation"]
    assert conversation["customer"] == {"name": "Ann", "email": "ann@example.com"}
    assert conversation["status"] == "REP_NEEDED"
    assert [e["node"]["text"] for e in conversation["messages"]["edges"]] == ["Hi", "Anyone?"]


async def test_twenty_concurrent_copies_are_stored_once(server):
    org = await new_org(server)
    channel = await org.channel(await org.team("Support"))
    body = {"messageId": "retry-1", "customer": {"externalId": "c9"}, "text": "once"}
    responses = await asyncio.gather(*[server.inbound(channel.id, channel.key, body) for _ in range(20)])
    assert {r.status_code for r in responses} == {202}
    answers = [r.json() for r in responses]
    assert len({(a["conversationId"], a["messageId"]) for a in answers}) == 1
    assert sum(not a["duplicate"] for a in answers) == 1
    assert await server.db.messages.count_documents({}) == 1
    assert await server.db.customers.count_documents({}) == 1
    # the copies that lost the insert took sequence numbers, but the list shows only what was stored
    [stored] = await server.db.messages.find({}).to_list()
    data = await org.gql(
        "query($id: ID!) { conversation(id: $id) { lastMessage { id seq } } }", {"id": answers[0]["conversationId"]}
    )
    assert data["conversation"]["lastMessage"] == {"id": stored["_id"], "seq": stored["seq"]}


@pytest.mark.parametrize(
    "case",
    ["wrong_key", "unknown_channel", "bad_id", "malformed", "missing_fields", "too_large", "not_json", "bad_email"],
)
async def test_bad_inbound_requests_get_their_status_and_write_nothing(server, case):
    org = await new_org(server)
    channel = await org.channel(await org.team("Support"))
    before = {name: await server.db[name].count_documents({}) for name in ("customers", "conversations", "messages")}
    good = {"customer": {"externalId": "c1"}, "text": "hi"}
    url, headers, kwargs = f"/channels/{channel.id}/inbound", {"X-Channel-Key": channel.key}, {"json": good}
    expected = {
        "wrong_key": 401,
        "unknown_channel": 404,
        "bad_id": 404,
        "malformed": 422,
        "missing_fields": 422,
        "too_large": 413,
        "not_json": 415,
        "bad_email": 422,
    }[case]
    if case == "wrong_key":
        headers = {"X-Channel-Key": "ik_wrong"}
    elif case == "unknown_channel":
        url = "/channels/0123456789abcdef01234567/inbound"
    elif case == "bad_id":
        url = "/channels/$where/inbound"
    elif case == "malformed":
        kwargs = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
    elif case == "missing_fields":
        kwargs = {"json": {"customer": {"name": "no external id"}, "text": 5}}
    elif case == "too_large":
        kwargs = {"json": {"customer": {"externalId": "c1"}, "text": "x" * (1024 * 1024 + 10)}}
    elif case == "not_json":
        kwargs = {"content": b"text=hi", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    elif case == "bad_email":
        kwargs = {"json": {"customer": {"externalId": "c1", "email": "a\r\nBcc: x@y.z"}, "text": "hi"}}
    response = await server.http.post(url, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)
    assert response.status_code == expected, response.text
    if case == "missing_fields":
        fields = {f["field"] for f in response.json()["fields"]}
        assert {"customer.externalId", "text"} <= fields
    after = {name: await server.db[name].count_documents({}) for name in before}
    assert after == before


async def test_presence_updates_customer_and_is_refused_for_other_channels(server):
    org = await new_org(server)
    team = await org.team("Support")
    widget, line = await org.channel(team), await org.channel(team, "LINE", "Line")
    receipt = await org.customer_writes(widget, "v1", "hello")
    response = await server.presence(
        widget.id,
        widget.key,
        {"customer": {"externalId": "v1"}, "online": True, "location": {"city": "Hong Kong", "country": "HK"}},
    )
    assert response.status_code == 200
    query = """query($id: ID!) { conversation(id: $id) { customer { online lastActiveAt
        location { city country } } } }"""
    customer = (await org.gql(query, {"id": receipt["conversationId"]}))["conversation"]["customer"]
    assert customer["online"] is True and customer["lastActiveAt"]
    assert customer["location"] == {"city": "Hong Kong", "country": "HK"}
    await server.presence(widget.id, widget.key, {"customer": {"externalId": "v1"}, "online": False})
    customer = (await org.gql(query, {"id": receipt["conversationId"]}))["conversation"]["customer"]
    assert customer["online"] is False
    response = await server.presence(line.id, line.key, {"customer": {"externalId": "v1"}, "online": True})
    assert response.status_code == 422


async def test_login_token_of_removed_secret_is_rejected(make_server):
    first = await make_server()
    org = await new_org(first)
    other = await make_server(jwt_secret="another-secret-" + "y" * 32, database=first.settings.database)
    body = await other.gql("{ me { id } }", token=org.owner.token, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await login(other, org.owner.email)
