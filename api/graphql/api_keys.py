"""API keys in the schema: owners and admins create, list and revoke them.

The rules are :mod:`domain.usecases.api_keys`; what an app may reach with its key
is :mod:`api.graphql.scopes`; how a key is recognised on every instance is
:mod:`api.api_keys`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.descriptions import mutation_description
from api.graphql.enums import ApiKeyScope
from api.graphql.payloads import run
from api.graphql.types import Member, Team, UserError
from api.graphql.viewer_fields import PerViewer
from domain import entities as e
from domain.enums import ErrorCode as E
from domain.usecases import api_keys as keys


@strawberry.type(
    description="An integration's credential: it acts as an app of the organization, within its scopes and "
    "teams. The key itself is shown only once, by `createApiKey`."
)
class ApiKey:
    entity: strawberry.Private[e.ApiKey]

    @strawberry.field(description="API key id (also the id of its app, as a message's `sender.app`).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.id)

    @strawberry.field(description="Its name, shown as the sender and actor of what its app does.")
    def name(self) -> str:
        return self.entity.name

    @strawberry.field(description='The key\'s first characters (`imb_` and four more), to recognise it: "imb_AbCd…".')
    def prefix(self) -> str:
        return self.entity.prefix

    @strawberry.field(description="What its app may do.")
    def scopes(self) -> list[ApiKeyScope]:
        return list(self.entity.scopes)

    @strawberry.field(
        description="The teams its app acts in; empty: every team of the organization.",
        extensions=[PerViewer()],  # read from the caller's teams (owners and admins see them all)
    )
    def teams(self, info: Info) -> list[Team]:
        viewer = info.context.viewer
        found = [viewer.team(t) for t in self.entity.team_ids] if viewer else []
        return [Team(entity=t) for t in found if t is not None]

    @strawberry.field(description="When it was created.")
    def created_at(self) -> datetime:
        return self.entity.created_at

    @strawberry.field(description="Who created it.")
    async def created_by(self, info: Info) -> Member | None:
        if not self.entity.created_by:
            return None
        found = await info.context.loaders.member.load(self.entity.created_by)
        return Member(entity=found) if found else None

    @strawberry.field(
        description="When it was last used (precise to a minute: each server instance records a key's use at "
        "most once a minute); null: never."
    )
    def last_used_at(self) -> datetime | None:
        return self.entity.last_used_at

    @strawberry.field(description="When it was revoked; null while it works.")
    def revoked_at(self) -> datetime | None:
        return self.entity.revoked_at


@strawberry.input(description="A new API key.")
class CreateApiKeyInput:
    name: str = strawberry.field(description="What the integration is called; shown as the sender of its messages.")
    scopes: list[ApiKeyScope] = strawberry.field(description="What its app may do (at least one).")
    team_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description=f"The teams its app acts in (at most {keys.MAX_TEAMS}); empty or omitted: every team of the "
        "organization, teams created later included.",
    )


@strawberry.type(description="Result of `createApiKey`.")
class CreateApiKeyPayload:
    api_key: ApiKey | None = strawberry.field(default=None, description="The new key's details.")
    key: str | None = strawberry.field(
        default=None,
        description="The key, for `Authorization: Bearer <key>`. Shown only this once: only its hash is stored.",
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `revokeApiKey`.")
class RevokeApiKeyPayload:
    api_key: ApiKey | None = strawberry.field(default=None, description="The revoked key.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type
class ApiKeyQuery:
    @strawberry.field(
        description="The organization's API keys that still work, newest first (owners and admins; others get "
        "`FORBIDDEN`). The keys themselves are never shown again: only their prefixes."
    )
    async def api_keys(self, info: Info) -> list[ApiKey]:
        ctx = info.context
        return [ApiKey(entity=k) for k in await keys.list_api_keys(ctx.services.store, ctx.viewer)]


@strawberry.type
class ApiKeyMutation:
    @strawberry.mutation(
        description=mutation_description(
            "Create an API key for an integration (owners and admins). Its app sees what its scopes and teams "
            "allow, never joins or grabs, and is the sender of the messages it sends. Returns the key, only "
            "this once.",
            {
                E.FORBIDDEN: "you are not an owner or admin.",
                E.INVALID_INPUT: "the name is empty, too long or has control characters; no scope; or more "
                f"than {keys.MAX_TEAMS} teams.",
                E.NOT_FOUND: "a team of `teamIds` is not in your organization.",
            },
        )
    )
    async def create_api_key(
        self, info: Info, input: Annotated[CreateApiKeyInput, strawberry.argument(description="The new key.")]
    ) -> CreateApiKeyPayload:
        ctx = info.context

        async def action():
            key, secret = await keys.create_api_key(
                ctx.services.store,
                ctx.viewer,
                input.name,
                list(input.scopes),
                [str(t) for t in input.team_ids],
                ctx.now,
            )
            return {"api_key": ApiKey(entity=key), "key": secret}

        return await run(CreateApiKeyPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Revoke an API key (owners and admins). It is refused at once on every server instance, and "
            "WebSockets opened with it are closed (code 4401). What its app did keeps its name. Revoking it "
            "again changes nothing.",
            {
                E.FORBIDDEN: "you are not an owner or admin.",
                E.NOT_FOUND: "no such API key in your organization.",
            },
        )
    )
    async def revoke_api_key(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The API key's id.")]
    ) -> RevokeApiKeyPayload:
        ctx = info.context

        async def action():
            key = await keys.revoke_api_key(ctx.services.store, ctx.services.events, ctx.viewer, str(id), ctx.now)
            if ctx.services.api_keys is not None:
                ctx.services.api_keys.revoked(key.id)  # this instance: before the answer, not when the hub reads
            return {"api_key": ApiKey(entity=key)}

        return await run(RevokeApiKeyPayload, action)
