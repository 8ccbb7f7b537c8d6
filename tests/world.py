"""Builds organizations, teams, members and channels through the public API."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from domain.errors import Refused
from domain.usecases.onboarding import create_organization

_counter = itertools.count()
PASSWORD = "correct horse battery"


@dataclass
class Person:
    id: str
    email: str
    token: str


@dataclass
class ChannelInfo:
    id: str
    key: str
    type: str


@dataclass
class Org:
    server: object
    owner: Person
    teams: dict[str, str] = field(default_factory=dict)

    async def gql(self, query, variables=None, as_: Person | None = None, expect_errors=False):
        return await self.server.gql(query, variables, (as_ or self.owner).token, expect_errors)

    async def member(self, name: str, role: str = "MEMBER") -> Person:
        email = f"{name}.{next(_counter)}@example.com"
        data = await self.gql(
            """mutation($i: InviteMemberInput!) { inviteMember(input: $i) {
            member { id } errors { code message } } }""",
            {"i": {"email": email, "name": name, "password": PASSWORD, "role": role}},
        )
        assert data["inviteMember"]["errors"] == [], data
        return Person(data["inviteMember"]["member"]["id"], email, await login(self.server, email))

    async def team(self, name: str, mode: str = "COLLABORATION") -> str:
        data = await self.gql(
            """mutation($i: CreateTeamInput!) { createTeam(input: $i) {
            team { id } errors { code } } }""",
            {"i": {"name": name, "mode": mode}},
        )
        assert data["createTeam"]["errors"] == [], data
        self.teams[name] = data["createTeam"]["team"]["id"]
        return self.teams[name]

    async def add(self, team_id: str, person: Person, role: str = "REPRESENTATIVE") -> None:
        data = await self.gql(
            """mutation($i: AddTeamMemberInput!) { addTeamMember(input: $i) {
            errors { code } } }""",
            {"i": {"teamId": team_id, "memberId": person.id, "role": role}},
        )
        assert data["addTeamMember"]["errors"] == [], data

    async def channel(self, team_id: str, type_: str = "WEB_WIDGET", name: str = "Site") -> ChannelInfo:
        data = await self.gql(
            """mutation($i: ConnectChannelInput!) { connectChannel(input: $i) {
            channel { id } ingestKey errors { code } } }""",
            {"i": {"type": type_, "name": name, "teamId": team_id}},
        )
        payload = data["connectChannel"]
        assert payload["errors"] == [], data
        return ChannelInfo(payload["channel"]["id"], payload["ingestKey"], type_)

    async def customer_writes(self, channel: ChannelInfo, external_id: str, text: str = "Hello", **extra) -> dict:
        body = {"customer": {"externalId": external_id, **extra.pop("customer", {})}, "text": text, **extra}
        response = await self.server.inbound(channel.id, channel.key, body)
        assert response.status_code == 202, response.text
        return response.json()


async def login(server, email: str, password: str = PASSWORD) -> str:
    data = await server.gql(
        """mutation($i: LoginInput!) { login(input: $i) { token errors { code } } }""",
        {"i": {"email": email, "password": password}},
    )
    assert data["login"]["errors"] == [], data
    return data["login"]["token"]


async def new_org(server, name: str = "Acme") -> Org:
    services = server.services
    email = f"owner.{next(_counter)}@example.com"
    try:
        await create_organization(services.store, services.passwords, name, email, PASSWORD, "Owner", services.clock())
    except Refused as refused:  # pragma: no cover - a broken fixture should say why
        raise AssertionError(refused.message) from refused
    token = await login(server, email)
    me = await server.gql("{ me { id } }", token=token)
    return Org(server, Person(me["me"]["id"], email, token))


async def support_desk(server, *agent_names: str, channel_type: str = "LINE"):
    """A new organization with one COLLABORATION team, its agents and one channel."""
    org = await new_org(server)
    team = await org.team("Support")
    agents = [await org.member(name) for name in agent_names]
    for agent in agents:
        await org.add(team, agent)
    return org, team, tuple(agents), await org.channel(team, channel_type)


async def grab_desk(server, channel_type: str = "WEB_WIDGET"):
    """A new organization with one GRAB team: representatives alice and bob, team admin boss."""
    org = await new_org(server)
    team = await org.team("Grabbers", "GRAB")
    alice, bob, boss = await org.member("alice"), await org.member("bob"), await org.member("boss")
    for person, role in ((alice, "REPRESENTATIVE"), (bob, "REPRESENTATIVE"), (boss, "ADMIN")):
        await org.add(team, person, role)
    return org, team, await org.channel(team, channel_type, "Grab channel"), alice, bob, boss
