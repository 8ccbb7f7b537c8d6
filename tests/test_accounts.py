"""Issue 17, item 9: members' accounts and sessions over the real API.

Changing a password ends the member's other sessions, logging out ends one token,
an admin's reset hands out a one-time token and locks the account until it is
used, deactivation cuts tokens and WebSockets and releases grabs, roles change
under the owner rules. Revocation holds on another instance within a second,
on one started later, and costs no database command to check.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import jwt
import pytest
import websockets

from tests import conftest
from tests.clock import FakeClock
from tests.test_api_keys import CommandLog, refused
from tests.world import PASSWORD, Person, grab_desk, login, new_org, support_desk
from tests.ws import Subscriber

CHANGE = """mutation($i: ChangePasswordInput!) { changePassword(input: $i) {
    token member { id } errors { code field } } }"""
LOGOUT = "mutation { logout { ok errors { code } } }"
RESET = """mutation($i: MemberAccountInput!) { resetMemberPassword(input: $i) {
    resetToken expiresAt member { id } errors { code field } } }"""
COMPLETE = """mutation($i: CompletePasswordResetInput!) { completePasswordReset(input: $i) {
    token member { id } errors { code field } } }"""
DEACTIVATE = """mutation($i: MemberAccountInput!) { deactivateMember(input: $i) {
    member { id deactivatedAt } errors { code field } } }"""
REACTIVATE = """mutation($i: MemberAccountInput!) { reactivateMember(input: $i) {
    member { id deactivatedAt } errors { code field } } }"""
ROLE = """mutation($i: ChangeMemberRoleInput!) { changeMemberRole(input: $i) {
    member { id role } errors { code field } } }"""
LOGIN = "mutation($i: LoginInput!) { login(input: $i) { token errors { code } } }"
ME = "{ me { id } }"
EVENTS = "subscription { conversationEvents { kind conversationId } }"
HISTORY = """query($id: ID!) { conversation(id: $id) { owner { id }
    messages(last: 10) { edges { node { text system { action } } } } } }"""
TRANSFER = """mutation($i: TransferConversationInput!) { transferConversation(input: $i) {
    errors { code field } } }"""
NEW_PASSWORD = "a brand new passphrase"


async def works(server, token: str) -> bool:
    body = await server.gql(ME, token=token, expect_errors=True)
    if "errors" in body:
        assert refused(body) == "UNAUTHENTICATED", body
        return False
    return True


async def login_code(server, email: str, password: str) -> str | None:
    errors = (await server.gql(LOGIN, {"i": {"email": email, "password": password}}))["login"]["errors"]
    return errors[0]["code"] if errors else None


async def closed_within(sub: Subscriber, started: float, seconds: float = 1) -> None:
    await asyncio.wait_for(sub.socket.wait_closed(), timeout=seconds + 1)
    assert time.monotonic() - started < seconds, "a socket of a cut token still open after 1 s"
    assert (sub.socket.close_code, sub.socket.close_reason) == (4401, "Token revoked")


async def subscribed(server, sub: Subscriber) -> None:
    await sub.subscribe(EVENTS)
    await server.subscribed(1)


# --- your own password and sessions -------------------------------------------------------------


async def test_changing_your_password_ends_your_other_sessions_and_keeps_this_one(server):
    org, _, (ann,), _ = await support_desk(server, "ann")
    other = await login(server, ann.email)
    change = {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
    for wrong, code, field in (
        ({"currentPassword": "not it at all"}, "INVALID_CREDENTIALS", "currentPassword"),
        ({"newPassword": "short"}, "INVALID_INPUT", "newPassword"),
        ({"newPassword": PASSWORD}, "INVALID_INPUT", "newPassword"),
        ({"newPassword": "x" * 257}, "INVALID_INPUT", "newPassword"),
    ):
        payload = (await org.gql(CHANGE, {"i": {**change, **wrong}}, as_=ann))["changePassword"]
        assert (payload["token"], payload["errors"]) == (None, [{"code": code, "field": field}])
    assert await works(server, ann.token) and await works(server, other), "a refusal changes nothing"
    async with Subscriber(server.ws_url, other) as sub:
        await subscribed(server, sub)
        payload = (await org.gql(CHANGE, {"i": change}, as_=ann))["changePassword"]
        started = time.monotonic()
        assert payload["errors"] == [] and payload["member"]["id"] == ann.id
        await closed_within(sub, started)
    assert not await works(server, ann.token) and not await works(server, other)
    assert await works(server, payload["token"]), "this tab goes on with its fresh token"
    assert await login_code(server, ann.email, PASSWORD) == "INVALID_CREDENTIALS"
    assert await works(server, await login(server, ann.email, NEW_PASSWORD))


async def test_guessing_your_current_password_is_throttled_like_a_login(server):
    org, _, (ann,), _ = await support_desk(server, "ann")
    guess = {"i": {"currentPassword": "a wrong guess", "newPassword": NEW_PASSWORD}}
    codes = [(await org.gql(CHANGE, guess, as_=ann))["changePassword"]["errors"][0]["code"] for _ in range(6)]
    assert codes == ["INVALID_CREDENTIALS"] * 5 + ["TOO_MANY_ATTEMPTS"]
    right = {"i": {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}}
    assert (await org.gql(CHANGE, right, as_=ann))["changePassword"]["errors"][0]["code"] == "TOO_MANY_ATTEMPTS"
    assert await login_code(server, ann.email, PASSWORD) == "TOO_MANY_ATTEMPTS", "one throttle for both"
    assert await works(server, ann.token), "nothing changed"


async def test_logout_ends_only_this_token(server):
    org, _, (ann,), _ = await support_desk(server, "ann")
    other = await login(server, ann.email)
    async with Subscriber(server.ws_url, ann.token) as this_tab, Subscriber(server.ws_url, other) as other_tab:
        await this_tab.subscribe(EVENTS)
        await other_tab.subscribe(EVENTS)
        await server.subscribed(2, 1)  # one shared stream: the same viewer
        assert (await org.gql(LOGOUT, as_=ann))["logout"] == {"ok": True, "errors": []}
        await closed_within(this_tab, time.monotonic())
        assert other_tab.socket.close_code is None
    assert not await works(server, ann.token)
    assert refused(await server.gql(LOGOUT, token=ann.token, expect_errors=True)) == "UNAUTHENTICATED"
    assert await works(server, other)
    # a token from before tokens had ids (no `ver`, no `jti`) can't be ended alone: all of hers end
    org_id = jwt.decode(ann.token, options={"verify_signature": False})["org"]
    legacy = jwt.encode(
        {"sub": ann.id, "org": org_id, "exp": int(time.time()) + 600},
        server.settings.jwt_secret,
        algorithm="HS256",
    )
    assert await works(server, legacy)
    assert (await server.gql(LOGOUT, token=legacy))["logout"]["ok"] is True
    assert not await works(server, legacy) and not await works(server, other)
    assert await works(server, await login(server, ann.email))


# --- an admin's reset ---------------------------------------------------------------------------


async def test_a_reset_token_is_shown_once_locks_the_account_and_works_once(make_server, raw_db):
    clock = FakeClock()
    server = await make_server(clock=clock)
    org, _, (ann, bob), _ = await support_desk(server, "ann", "bob")
    payload = (await org.gql(RESET, {"i": {"memberId": ann.id}}))["resetMemberPassword"]
    assert payload["errors"] == [] and payload["member"]["id"] == ann.id and payload["expiresAt"]
    token = payload["resetToken"]
    stored = await raw_db[server.settings.database].members.find_one({"_id": ann.id})
    assert stored["reset_hash"] == hashlib.sha256(token.encode()).hexdigest() and token not in str(stored)
    assert not await works(server, ann.token), "her sessions end at once"
    assert await login_code(server, ann.email, PASSWORD) == "INVALID_CREDENTIALS", "the old password is gone"
    for wrong, code, field in (
        ({"newPassword": "short"}, "INVALID_INPUT", "newPassword"),
        ({"token": "prt_" + "A" * 43}, "INVALID_CREDENTIALS", "token"),
        ({"token": "not a token"}, "INVALID_CREDENTIALS", "token"),
    ):
        body = {"token": token, "newPassword": NEW_PASSWORD, **wrong}
        answer = (await server.gql(COMPLETE, {"i": body}))["completePasswordReset"]  # no bearer token needed
        assert (answer["token"], answer["errors"]) == (None, [{"code": code, "field": field}])
    done = (await server.gql(COMPLETE, {"i": {"token": token, "newPassword": NEW_PASSWORD}}))["completePasswordReset"]
    assert done["errors"] == [] and done["member"]["id"] == ann.id and await works(server, done["token"])
    again = await server.gql(COMPLETE, {"i": {"token": token, "newPassword": "yet another one"}})
    assert again["completePasswordReset"]["errors"] == [{"code": "INVALID_CREDENTIALS", "field": "token"}]
    assert await works(server, await login(server, ann.email, NEW_PASSWORD))
    # a reset token expires after 24 hours
    late = (await org.gql(RESET, {"i": {"memberId": bob.id}}))["resetMemberPassword"]["resetToken"]
    clock.advance(24 * 3600 + 1)
    expired = await server.gql(COMPLETE, {"i": {"token": late, "newPassword": NEW_PASSWORD}})
    assert expired["completePasswordReset"]["errors"] == [{"code": "INVALID_CREDENTIALS", "field": "token"}]


async def test_account_mutations_refuse_whom_you_may_not_manage(server):
    org = await new_org(server)
    admin, ann = await org.member("admin", "ADMIN"), await org.member("ann")
    stranger = await (await new_org(server, "Other")).member("stranger")
    for mutation, name in ((RESET, "resetMemberPassword"), (DEACTIVATE, "deactivateMember")):
        for as_, member_id, code in (
            (ann, admin.id, "FORBIDDEN"),  # members manage nobody
            (admin, org.owner.id, "FORBIDDEN"),  # only an owner manages an owner
            (admin, stranger.id, "NOT_FOUND"),  # another organization's member is absent
            (admin, "not-an-id", "NOT_FOUND"),
            (admin, admin.id, "INVALID_INPUT"),  # not yourself
        ):
            payload = (await org.gql(mutation, {"i": {"memberId": member_id}}, as_=as_))[name]
            assert [e["code"] for e in payload["errors"]] == [code], (name, member_id, payload)
    reactivate = (await org.gql(REACTIVATE, {"i": {"memberId": stranger.id}}))["reactivateMember"]
    assert reactivate["errors"] == [{"code": "NOT_FOUND", "field": "memberId"}]
    reactivate = (await org.gql(REACTIVATE, {"i": {"memberId": admin.id}}, as_=ann))["reactivateMember"]
    assert reactivate["errors"][0]["code"] == "FORBIDDEN"
    assert all([await works(server, p.token) for p in (org.owner, admin, ann, stranger)]), "nothing changed"
    assert await login_code(server, stranger.email, PASSWORD) is None


# --- roles --------------------------------------------------------------------------------------


async def test_roles_follow_the_owner_rules_and_hold_for_current_tokens(server):
    org = await new_org(server)
    admin, ann = await org.member("admin", "ADMIN"), await org.member("ann")
    stranger = await (await new_org(server, "Other")).member("stranger")

    async def change(member: Person, role: str, as_: Person | None = None) -> dict:
        return (await org.gql(ROLE, {"i": {"memberId": member.id, "role": role}}, as_=as_))["changeMemberRole"]

    for member, role, as_, code in (
        (ann, "ADMIN", ann, "FORBIDDEN"),  # members change nobody's role
        (ann, "OWNER", admin, "FORBIDDEN"),  # an admin raises nobody above their own role
        (org.owner, "MEMBER", admin, "FORBIDDEN"),  # nor demotes an owner
        (stranger, "MEMBER", None, "NOT_FOUND"),
        (org.owner, "ADMIN", None, "LAST_OWNER"),  # the organization keeps an owner
    ):
        assert [e["code"] for e in (await change(member, role, as_))["errors"]] == [code], (member, role)
    keys = "{ apiKeys { id } }"
    assert refused(await server.gql(keys, token=ann.token, expect_errors=True)) == "FORBIDDEN"
    assert (await change(ann, "ADMIN", admin))["member"]["role"] == "ADMIN"
    assert await server.gql(keys, token=ann.token) == {"apiKeys": []}, "her current token is an admin's at once"
    assert (await change(ann, "OWNER"))["member"]["role"] == "OWNER"
    assert (await change(org.owner, "MEMBER", ann))["member"]["role"] == "MEMBER", "another owner remains"
    assert refused(await server.gql(keys, token=org.owner.token, expect_errors=True)) == "FORBIDDEN"
    assert await works(server, org.owner.token), "a role change ends no session"


# --- deactivation, across instances -------------------------------------------------------------


async def test_deactivation_cuts_tokens_and_sockets_everywhere_and_offers_the_grab_again(make_server):
    a = await make_server()
    b = await make_server(database=a.settings.database)
    org, _, channel, alice, bob, _ = await grab_desk(a)
    cid = (await org.customer_writes(channel, "c1"))["conversationId"]
    grab = "mutation($id: ID!) { grabConversation(id: $id) { errors { code } } }"
    assert (await org.gql(grab, {"id": cid}, as_=alice))["grabConversation"]["errors"] == []
    logged_out = await login(a, bob.email)
    assert await works(b, alice.token) and await works(b, logged_out)  # b has seen them
    async with Subscriber(b.ws_url, alice.token) as on_b, Subscriber(b.ws_url, logged_out) as bobs_tab:
        await on_b.subscribe(EVENTS)
        await bobs_tab.subscribe(EVENTS)
        await b.subscribed(2)
        deactivated = (await org.gql(DEACTIVATE, {"i": {"memberId": alice.id}}))["deactivateMember"]
        started = time.monotonic()
        assert deactivated["errors"] == [] and deactivated["member"]["deactivatedAt"]
        assert not await works(a, alice.token), "at once on the instance that deactivated her"
        while await works(b, alice.token):
            assert time.monotonic() - started < 1, "still accepted on the other instance after 1 s"
            await asyncio.sleep(0.02)
        await closed_within(on_b, started)
        # bob logs out one tab on a: b refuses that token, and closes its socket, within a second
        assert (await a.gql(LOGOUT, token=logged_out))["logout"]["ok"] is True
        await closed_within(bobs_tab, time.monotonic())
    assert await works(b, bob.token), "bob's other session goes on"
    assert await login_code(a, alice.email, PASSWORD) == "ACCOUNT_DEACTIVATED"
    found = (await org.gql(HISTORY, {"id": cid}, as_=bob))["conversation"]
    assert found["owner"] is None, "released: offered to the team again"
    assert found["messages"]["edges"][-1]["node"] == {
        "text": "alice left and released the conversation (account deactivated by Owner).",
        "system": {"action": "RELEASED"},
    }
    assert (await org.gql(grab, {"id": cid}, as_=bob))["grabConversation"]["errors"] == []
    hand_over = (await org.gql(TRANSFER, {"i": {"id": cid, "toMemberId": alice.id}}))["transferConversation"]
    assert hand_over["errors"] == [{"code": "INVALID_INPUT", "field": "toMemberId"}], "never to a deactivated member"
    again = (await org.gql(DEACTIVATE, {"i": {"memberId": alice.id}}))["deactivateMember"]
    assert again["member"]["deactivatedAt"] == deactivated["member"]["deactivatedAt"], "a no-op"
    # an instance started later knows what was revoked before it
    c = await make_server(database=a.settings.database)
    assert not await works(c, alice.token) and not await works(c, logged_out) and await works(c, bob.token)
    reactivated = (await org.gql(REACTIVATE, {"i": {"memberId": alice.id}}))["reactivateMember"]
    assert reactivated["errors"] == [] and reactivated["member"]["deactivatedAt"] is None
    assert not await works(c, alice.token), "tokens from before stay refused"
    assert await works(c, await login(c, alice.email))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await Subscriber(b.ws_url, alice.token).connect()
    assert closed.value.rcvd.code == 4403


# --- cost ---------------------------------------------------------------------------------------


async def test_checking_a_token_costs_no_database_command(mongo_uri, data_dir):
    commands = CommandLog()
    server = conftest.Server(conftest.make_settings(mongo_uri, data_dir), [commands])
    await server.start()
    try:
        org, _, (ann,), _ = await support_desk(server, "ann")
        ended = await login(server, ann.email)
        assert (await server.gql(LOGOUT, token=ended))["logout"]["ok"] is True
        read = ("members", "teams", "revoked_tokens")
        before = len(commands.on(*read))
        for _ in range(3):
            assert not await works(server, ended)
        assert commands.on(*read)[before:] == [], "a revoked token is refused from memory"
        assert await works(server, ann.token)
        # as before tokens could be revoked: the viewer (with the teams) and `me`
        assert commands.on(*read)[before:] == [("aggregate", "members"), ("find", "members")]
    finally:
        await server.stop()
        await conftest.drop_databases(mongo_uri, {server.settings.database})


# --- a race a server can't stage on demand ------------------------------------------------------


async def test_two_owners_demoting_each_other_at_once_leave_one_owner():
    """Both read two owners, both demote; the one that finds none left gives its change back."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from domain.entities import Member
    from domain.enums import OrgRole
    from domain.errors import Refused
    from domain.usecases import accounts
    from domain.visibility import Viewer

    now = datetime.now(UTC)
    ids = ("a" * 24, "b" * 24)
    owners = {i: Member(i, "org", f"{i[0]}@x.io", i[0], OrgRole.OWNER, now) for i in ids}

    class Store:
        async def member(self, org_id, member_id):
            return owners.get(member_id)

        async def owner_count(self, org_id):
            return sum(m.role is OrgRole.OWNER for m in owners.values())

        async def set_role(self, org_id, member_id, role, was):
            if owners[member_id].role is not was:
                return None
            owners[member_id] = replace(owners[member_id], role=role)
            if role is not OrgRole.OWNER:  # the other owner's demotion of this caller lands meanwhile
                other = next(i for i in ids if i != member_id)
                owners[other] = replace(owners[other], role=OrgRole.ADMIN)
            return owners[member_id]

    class Events:
        async def publish_teams_changed(self, org_id, at):
            raise AssertionError("nothing changed, nothing to announce")

    viewer = Viewer(member_id=ids[0], org_id="org", org_role=OrgRole.OWNER)
    with pytest.raises(Refused) as refusal:
        await accounts.change_member_role(Store(), Events(), viewer, ids[1], OrgRole.ADMIN, now)
    assert refusal.value.code.value == "LAST_OWNER"
    assert [m.role for m in owners.values()].count(OrgRole.OWNER) == 1
