"""Members' accounts in the schema: password, sessions, deactivation, role.

The rules are :mod:`domain.usecases.accounts`; how a cut token is refused on
every instance without a database read is :mod:`api.sessions`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.auth import Claims, bearer_token
from api.graphql.descriptions import mutation_description
from api.graphql.enums import OrgRole
from api.graphql.payloads import run
from api.graphql.types import Member, UserError
from domain import entities as e
from domain.enums import ErrorCode as E
from domain.errors import Refused
from domain.usecases import accounts

MEMBER_ID = strawberry.argument(description="The member's id.")
CUT = "Their WebSockets are closed (code 4401) and their tokens refused, on every server instance within a second."


@strawberry.input(description="Your current password and the new one.")
class ChangePasswordInput:
    current_password: str = strawberry.field(description="Your password now.")
    new_password: str = strawberry.field(description="The new password (8 to 256 characters).")


@strawberry.input(description="A member whose account is acted on.")
class MemberAccountInput:
    member_id: strawberry.ID = strawberry.field(description="The member's id.")


@strawberry.input(description="A member and their new role.")
class ChangeMemberRoleInput:
    member_id: strawberry.ID = strawberry.field(description="The member's id.")
    role: OrgRole = strawberry.field(description="Their new role in the organization.")


@strawberry.input(description="The reset token an owner or admin handed you, and your new password.")
class CompletePasswordResetInput:
    token: str = strawberry.field(description="The token of `resetMemberPassword` (`prt_…`).")
    new_password: str = strawberry.field(description="Your new password (8 to 256 characters).")


@strawberry.type(description="Result of `changePassword` and `completePasswordReset`.")
class PasswordPayload:
    token: str | None = strawberry.field(
        default=None,
        description="A fresh bearer token for this session: every token issued before is refused from now on.",
    )
    member: Member | None = strawberry.field(default=None, description="Whose password it is.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `logout`.")
class LogoutPayload:
    ok: bool = strawberry.field(default=False, description="True once the token is refused.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `resetMemberPassword`.")
class ResetMemberPasswordPayload:
    member: Member | None = strawberry.field(default=None, description="The member.")
    reset_token: str | None = strawberry.field(
        default=None,
        description="The one-time token to hand to the member (for instance in a link of your console that calls "
        "`completePasswordReset`). Shown only this once: only its hash is stored.",
    )
    expires_at: datetime | None = strawberry.field(default=None, description="When the token stops working.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of an account mutation on another member.")
class MemberAccountPayload:
    member: Member | None = strawberry.field(default=None, description="The member, as the change left them.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


def _claims(info: Info) -> Claims | None:
    """The caller's own token (HTTP header, or the WebSocket's ``connection_init``); None once
    refused (it was cut since the request was authenticated)."""
    ctx = info.context
    params = ctx.connection_params if isinstance(ctx.connection_params, dict) else {}
    header = params.get("authorization") or params.get("Authorization")
    if header is None and ctx.request is not None and hasattr(ctx.request, "headers"):
        header = ctx.request.headers.get("authorization")
    token = bearer_token(header if isinstance(header, str) else None)
    return ctx.services.tokens.claims(token) if token else None


def _cut_here(info: Info, member: e.Member) -> None:
    """This instance refuses the member's older tokens before it answers, not only when its hub
    reads the event (the other instances do then)."""
    sessions = info.context.services.sessions
    if sessions is not None:
        sessions.cut(member.id, member.token_version)


def _fresh_token(info: Info, session: accounts.Session) -> str:
    """A token of the member's new version: the session that changed the password goes on."""
    _cut_here(info, session.member)
    return info.context.services.tokens.issue(session.member.id, session.member.org_id, version=session.token_version)


@strawberry.type
class AccountMutation:
    @strawberry.mutation(
        description=mutation_description(
            "Change your password. Every other session of yours ends (tokens refused, WebSockets closed with "
            "4401, on every server instance within a second); this one goes on with the fresh token in the "
            "payload.",
            {
                E.INVALID_CREDENTIALS: "`currentPassword` is wrong.",
                E.TOO_MANY_ATTEMPTS: "too many wrong passwords recently (the login throttle counts these "
                "checks too). Try again later.",
                E.INVALID_INPUT: "`newPassword` is not 8 to 256 characters of text, or equals the current one.",
                E.FORBIDDEN: "you are an app (API key).",
                E.NOT_FOUND: "your account no longer exists.",
            },
        )
    )
    async def change_password(
        self, info: Info, input: Annotated[ChangePasswordInput, strawberry.argument(description="The passwords.")]
    ) -> PasswordPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            change = accounts.PasswordChange(input.current_password, input.new_password, ctx.client_address)
            session = await accounts.change_password(
                s.store, s.passwords, s.store, s.events, ctx.viewer, change, ctx.now, s.settings.login_policy
            )
            return {"token": _fresh_token(info, session), "member": Member(entity=session.member)}

        return await run(PasswordPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "End this session: the token of this request is refused from now on, on every server instance "
            "within a second, and WebSockets opened with it are closed (code 4401). Your other sessions go on. "
            "(A token issued before tokens had ids ends all your sessions.)",
            {
                E.FORBIDDEN: "you are an app (API key): revoke the key with `revokeApiKey` instead.",
            },
        )
    )
    async def logout(self, info: Info) -> LogoutPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            if ctx.viewer is not None and ctx.viewer.app is not None:
                raise Refused(E.FORBIDDEN, "Apps (API keys) have no session: revoke the key instead.")
            claims = _claims(info)
            if claims is None:  # ended meanwhile (a concurrent logout): nothing left to do
                return {"ok": True}
            expires_at = datetime.fromtimestamp(claims.expires_at, UTC)
            await accounts.logout(s.store, s.events, ctx.viewer, claims.token_id, expires_at, ctx.now)
            if s.sessions is not None:
                if claims.token_id:
                    s.sessions.end(claims.member_id, claims.token_id, claims.expires_at)
                else:
                    s.sessions.cut(claims.member_id, claims.version + 1)
            return {"ok": True}

        return await run(LogoutPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Reset another member's password (owners and admins; only an owner resets an owner's). Returns a "
            f"one-time token, shown only this once, valid {int(accounts.RESET_TTL.total_seconds() // 3600)} "
            "hours: hand it to the member, who chooses a new password with `completePasswordReset`. Until then "
            f"no password logs them in, and their sessions end now. {CUT} A new reset replaces an older one.",
            {
                E.FORBIDDEN: "you are not an owner or admin, or the member is an owner and you are not.",
                E.NOT_FOUND: "no such member in your organization.",
                E.INVALID_INPUT: "it is you (use `changePassword`).",
            },
        )
    )
    async def reset_member_password(
        self, info: Info, input: Annotated[MemberAccountInput, strawberry.argument(description="The member.")]
    ) -> ResetMemberPasswordPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            member, token, expires_at = await accounts.reset_member_password(
                s.store, s.events, ctx.viewer, str(input.member_id), ctx.now
            )
            _cut_here(info, member)
            return {"member": Member(entity=member), "reset_token": token, "expires_at": expires_at}

        return await run(ResetMemberPasswordPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Choose a new password with the one-time token of `resetMemberPassword`, and be logged in: the "
            "payload carries a bearer token. The reset token is used up.",
            {
                E.INVALID_CREDENTIALS: "the token is unknown, already used, replaced by a newer reset, or expired.",
                E.INVALID_INPUT: "`newPassword` is not 8 to 256 characters of text.",
                E.ACCOUNT_DEACTIVATED: "the account was deactivated since.",
            },
            public=True,
        )
    )
    async def complete_password_reset(
        self,
        info: Info,
        input: Annotated[CompletePasswordResetInput, strawberry.argument(description="The token and password.")],
    ) -> PasswordPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            session = await accounts.complete_password_reset(
                s.store, s.passwords, s.events, input.token, input.new_password, s.clock()
            )
            return {"token": _fresh_token(info, session), "member": Member(entity=session.member)}

        return await run(PasswordPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Deactivate another member's account (owners and admins; only an owner deactivates an owner). "
            f"They can no longer log in (`ACCOUNT_DEACTIVATED`). {CUT} They leave every open room, and the "
            "conversations they had grabbed are released and offered to their GRAB team again; each history "
            "says who took them out. Their team memberships stay. Deactivating again changes nothing.",
            {
                E.FORBIDDEN: "you are not an owner or admin, or the member is an owner and you are not.",
                E.NOT_FOUND: "no such member in your organization.",
                E.INVALID_INPUT: "it is you.",
            },
        )
    )
    async def deactivate_member(
        self, info: Info, input: Annotated[MemberAccountInput, strawberry.argument(description="The member.")]
    ) -> MemberAccountPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            member = await accounts.deactivate_member(
                s.store, s.events, ctx.viewer, str(input.member_id), ctx.now, s.settings.thresholds
            )
            _cut_here(info, member)
            return {"member": Member(entity=member)}

        return await run(MemberAccountPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Reactivate a deactivated member (owners and admins; only an owner reactivates an owner): they may "
            "log in again with their password. Tokens from before the deactivation stay refused. Reactivating "
            "an active member changes nothing.",
            {
                E.FORBIDDEN: "you are not an owner or admin, or the member is an owner and you are not.",
                E.NOT_FOUND: "no such member in your organization.",
            },
        )
    )
    async def reactivate_member(
        self, info: Info, input: Annotated[MemberAccountInput, strawberry.argument(description="The member.")]
    ) -> MemberAccountPayload:
        ctx = info.context

        async def action():
            member = await accounts.reactivate_member(ctx.services.store, ctx.viewer, str(input.member_id))
            return {"member": Member(entity=member)}

        return await run(MemberAccountPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Change a member's role in the organization (owners and admins). Only an owner makes someone an "
            "owner or changes an owner's role; the organization always keeps an active owner. It holds at once "
            "for the member's current tokens and live subscriptions; their sessions go on.",
            {
                E.FORBIDDEN: "you are not an owner or admin; or the new role is OWNER, or the member is an "
                "owner, and you are not an owner.",
                E.NOT_FOUND: "no such member in your organization.",
                E.LAST_OWNER: "the member is the organization's last active owner.",
                E.INVALID_INPUT: "the member's role kept changing while you changed it; look again.",
            },
        )
    )
    async def change_member_role(
        self,
        info: Info,
        input: Annotated[ChangeMemberRoleInput, strawberry.argument(description="The member and role.")],
    ) -> MemberAccountPayload:
        ctx = info.context

        async def action():
            member = await accounts.change_member_role(
                ctx.services.store, ctx.services.events, ctx.viewer, str(input.member_id), input.role, ctx.now
            )
            return {"member": Member(entity=member)}

        return await run(MemberAccountPayload, action)
