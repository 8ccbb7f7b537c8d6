"""Integrators' webhooks in the schema; the rules are :mod:`domain.usecases.webhooks`, the
delivery :mod:`api.webhooks`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.descriptions import mutation_description
from api.graphql.payloads import run
from api.graphql.types import Edge, PageInfo, Team, UserError
from api.graphql.viewer_fields import PerViewer
from api.webhooks.execution import DEFAULT_QUERY
from domain import webhooks as w
from domain.enums import ErrorCode as E
from domain.usecases import webhooks as uc

_MANAGERS = "Organization owners and admins, or an API key with MANAGE_WEBHOOKS (`FORBIDDEN` otherwise)."
_QUERY = (
    "A GraphQL subscription document over `conversationEvents` or `messageAdded`, with a filter if you like, "
    "as a live subscription would send it (no variables, no `after`); each event it would deliver is POSTed "
    "as that execution's JSON result. Checked like any operation (validation, depth, cost)."
)


@strawberry.type(description="One attempt to deliver an event (or a ping) to a webhook's endpoint.")
class WebhookDelivery:
    entity: strawberry.Private[w.WebhookDelivery]

    @strawberry.field(description="Attempt id (the cursor of `deliveries`).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.id)

    @strawberry.field(description="The event delivered (its `conversationEvents` id); null for a ping.")
    def event_id(self) -> strawberry.ID | None:
        return strawberry.ID(str(self.entity.event_id)) if self.entity.event_id is not None else None

    @strawberry.field(
        description="The `webhook-id` header sent: the same for every attempt, redelivery included, of one event."
    )
    def message_id(self) -> str:
        return self.entity.message_id

    @strawberry.field(description="When the attempt ended.")
    def at(self) -> datetime:
        return self.entity.at

    @strawberry.field(description="Whether the endpoint answered 2xx.")
    def succeeded(self) -> bool:
        return self.entity.succeeded

    @strawberry.field(description="The endpoint's HTTP status; null when no answer came (see `error`).")
    def status_code(self) -> int | None:
        return self.entity.status_code

    @strawberry.field(description="Milliseconds from resolving the host to the end of the answer.")
    def latency_ms(self) -> int:
        return self.entity.latency_ms

    @strawberry.field(description="The first 1 KB of the answer's body, as text.")
    def response(self) -> str | None:
        return self.entity.response

    @strawberry.field(
        description="Why no answer came: a timeout, a connection error, or an address the server refuses to call."
    )
    def error(self) -> str | None:
        return self.entity.error

    @strawberry.field(description="When this event is tried again, after a failure; null otherwise.")
    def next_retry_at(self) -> datetime | None:
        return self.entity.next_retry_at


@strawberry.type(description="A page of delivery attempts, newest first.")
class WebhookDeliveryConnection:
    edges: list[Edge[WebhookDelivery]] = strawberry.field(description="Attempts, newest first.")
    page_info: PageInfo = strawberry.field(description="Pagination.")


@strawberry.type(
    description="An integrator's endpoint, sent the conversation events of its teams as they happen, "
    "signed as the Standard Webhooks specification says (see the README's Integrations section)."
)
class Webhook:
    entity: strawberry.Private[w.Webhook]

    @strawberry.field(description="Webhook id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.entity.id)

    @strawberry.field(description="Where events are POSTed.")
    def url(self) -> str:
        return self.entity.url

    @strawberry.field(
        description="The subscription document whose results are sent (the default one if none was given)."
    )
    def query(self) -> str:
        return self.entity.query or DEFAULT_QUERY

    @strawberry.field(description="Whether `query` is the default selection (none was given).")
    def default_query(self) -> bool:
        return self.entity.query is None

    @strawberry.field(
        description="The teams whose conversations it sees (all of them, as those teams' admins do).",
        extensions=[PerViewer()],
    )
    def teams(self, info: Info) -> list[Team]:
        wanted = set(self.entity.team_ids)
        return [Team(entity=t) for t in info.context.viewer.teams if t.id in wanted]

    @strawberry.field(description="Your note about it.")
    def description(self) -> str | None:
        return self.entity.description

    @strawberry.field(description="Whether events are being delivered.")
    def enabled(self) -> bool:
        return self.entity.enabled

    @strawberry.field(
        description="Why the server disabled it (its endpoint failed for `IMBRACE_WEBHOOK_DISABLE_AFTER_S`, or its "
        "query no longer runs); null when enabled or disabled by hand."
    )
    def disabled_reason(self) -> str | None:
        return self.entity.disabled_reason

    @strawberry.field(
        description="The last event handled (delivered, or not for this webhook); the next comes after it."
    )
    def last_event_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.entity.cursor))

    @strawberry.field(description="Failed attempts in a row of the event after `lastEventId` (0: none failing).")
    def failed_attempts(self) -> int:
        return self.entity.attempts

    @strawberry.field(description="Since when its endpoint has been failing without a break; null when it is not.")
    def failing_since(self) -> datetime | None:
        return self.entity.failing_since

    @strawberry.field(description="When the failing event is tried again; null when none is waiting.")
    def next_attempt_at(self) -> datetime | None:
        return self.entity.next_attempt_at if self.entity.attempts else None

    @strawberry.field(
        description="After `rotateWebhookSecret`: until when deliveries are also signed with the previous secret."
    )
    def previous_secret_expires_at(self, info: Info) -> datetime | None:
        expires = self.entity.previous_secret_expires_at
        return expires if expires is not None and expires > info.context.now else None

    @strawberry.field(description="When it was created.")
    def created_at(self) -> datetime:
        return self.entity.created_at

    @strawberry.field(description="When its settings, secret or position last changed.")
    def updated_at(self) -> datetime | None:
        return self.entity.updated_at

    @strawberry.field(description="Its delivery attempts (kept 7 days), newest first.", extensions=[PerViewer()])
    async def deliveries(
        self,
        info: Info,
        first: Annotated[int, strawberry.argument(description="Page size, 0 to 100 (`INVALID_INPUT` otherwise).")] = 20,
        after: Annotated[
            str | None, strawberry.argument(description="`endCursor` of the previous page; omitted: the newest first.")
        ] = None,
    ) -> WebhookDeliveryConnection:
        ctx = info.context
        page = await uc.deliveries_of(ctx.services.store.webhooks, ctx.viewer, self.entity, first, after)
        edges = [Edge(cursor=d.id, node=WebhookDelivery(entity=d)) for d in page.deliveries]
        return WebhookDeliveryConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=edges[-1].cursor if edges else None),
        )


@strawberry.input(description="A new webhook.")
class CreateWebhookInput:
    url: str = strawberry.field(
        description="Where to POST: `https://` (`http://` is accepted outside production). Its host may not be, or "
        "resolve to, a loopback, private, link-local or metadata address."
    )
    team_ids: list[strawberry.ID] = strawberry.field(
        description="The teams whose conversations it sees (at least one, at most 100)."
    )
    query: str | None = strawberry.field(default=None, description=_QUERY + " Omitted: the default selection.")
    description: str | None = strawberry.field(default=None, description="A note for your colleagues (500 characters).")


@strawberry.input(description="Changes to a webhook; omitted fields are kept.")
class UpdateWebhookInput:
    id: strawberry.ID = strawberry.field(description="The webhook.")
    url: str | None = strawberry.field(default=strawberry.UNSET, description="A new URL (as in `createWebhook`).")
    team_ids: list[strawberry.ID] | None = strawberry.field(default=strawberry.UNSET, description="Its new teams.")
    query: str | None = strawberry.field(
        default=strawberry.UNSET, description=_QUERY + " Null or empty: back to the default selection."
    )
    description: str | None = strawberry.field(default=strawberry.UNSET, description="A new note; null clears it.")
    enabled: bool | None = strawberry.field(
        default=strawberry.UNSET,
        description="false stops deliveries; true resumes them where they stopped (events still kept), forgetting "
        "past failures: how a webhook the server disabled is enabled again.",
    )


@strawberry.input(description="Send events again.")
class RedeliverWebhookInput:
    webhook_id: strawberry.ID = strawberry.field(description="The webhook.")
    from_event_id: strawberry.ID = strawberry.field(
        description="The first event to send again; every later one follows, in order (kept for "
        "`IMBRACE_EVENT_RETENTION_S`)."
    )


@strawberry.type(description="Result of `createWebhook`.")
class CreateWebhookPayload:
    webhook: Webhook | None = strawberry.field(default=None, description="The webhook.")
    secret: str | None = strawberry.field(
        default=None,
        description="The signing secret (`whsec_…`), shown only this once: give it to the receiver, which "
        "verifies `webhook-signature` with it.",
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `rotateWebhookSecret`.")
class RotateWebhookSecretPayload:
    webhook: Webhook | None = strawberry.field(default=None, description="The webhook.")
    secret: str | None = strawberry.field(
        default=None,
        description="The new signing secret, shown only this once; the previous one also signs for 24 hours.",
    )
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `updateWebhook` and `redeliverWebhook`.")
class WebhookPayload:
    webhook: Webhook | None = strawberry.field(default=None, description="The webhook after the change.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `deleteWebhook`.")
class DeleteWebhookPayload:
    deleted_id: strawberry.ID | None = strawberry.field(default=None, description="The id of the webhook deleted.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(description="Result of `pingWebhook`.")
class PingWebhookPayload:
    delivery: WebhookDelivery | None = strawberry.field(default=None, description="How the test request went.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


_WHO = " For owners and admins, and apps whose API key has MANAGE_WEBHOOKS."
_WEBHOOK_ID = strawberry.argument(description="The webhook's id.")
_NO_WEBHOOK = "no such webhook in your organization."
_NOT_MANAGER = "you are not an owner or admin of the organization, nor an API key with MANAGE_WEBHOOKS."


def _unset(value):
    return uc.UNSET if value is strawberry.UNSET else value


def _kept_if_null(value):
    return uc.UNSET if value is strawberry.UNSET or value is None else value


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="Your organization's webhooks, oldest first. " + _MANAGERS)
    async def webhooks(self, info: Info) -> list[Webhook]:
        ctx = info.context
        return [Webhook(entity=x) for x in await uc.webhooks_of(ctx.services.store.webhooks, ctx.viewer)]

    @strawberry.field(
        description="One webhook, with its delivery attempts; null if there is no such webhook. " + _MANAGERS
    )
    async def webhook(self, info: Info, id: Annotated[strawberry.ID, _WEBHOOK_ID]) -> Webhook | None:
        ctx = info.context
        found = await uc.find_webhook(ctx.services.store.webhooks, ctx.viewer, str(id))
        return Webhook(entity=found) if found else None


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description=mutation_description(
            "Create a webhook: from now on, every event of its teams' conversations that its "
            "`query` would deliver is POSTed to its URL, signed. Returns the signing secret, only this once." + _WHO,
            {
                E.FORBIDDEN: _NOT_MANAGER,
                E.INVALID_INPUT: "the URL is not valid, not https in production, or its host is or resolves to a "
                "refused address (`url`); the query does not parse, is not one subscription to "
                "`conversationEvents` or `messageAdded`, declares variables, passes `after` or breaks a limit "
                "(`query`); no team, or too many (`teamIds`); the description is too long or not one line "
                "(`description`); or the organization has 50 webhooks already (`url`).",
                E.NOT_FOUND: "no such team in your organization (`teamIds`).",
            },
        )
    )
    async def create_webhook(
        self, info: Info, input: Annotated[CreateWebhookInput, strawberry.argument(description="The new webhook.")]
    ) -> CreateWebhookPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            draft = uc.WebhookDraft(
                url=input.url,
                team_ids=[str(t) for t in input.team_ids],
                query=input.query,
                description=input.description,
            )
            hooks = s.webhooks
            webhook, secret = await uc.create_webhook(
                s.store.webhooks, s.store.events, s.store, hooks.secrets, hooks, ctx.viewer, draft, ctx.now
            )
            hooks.changed()
            return {"webhook": Webhook(entity=webhook), "secret": secret}

        return await run(CreateWebhookPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Change a webhook. Deliveries in progress stop and resume with the new settings; "
            "`enabled: true` resumes a disabled webhook where it stopped." + _WHO,
            {
                E.FORBIDDEN: _NOT_MANAGER,
                E.NOT_FOUND: _NO_WEBHOOK + " Or no such team (`teamIds`).",
                E.INVALID_INPUT: "a new URL, query, team list or description breaks a rule of `createWebhook` "
                "(`field` says which).",
            },
        )
    )
    async def update_webhook(
        self, info: Info, input: Annotated[UpdateWebhookInput, strawberry.argument(description="The changes.")]
    ) -> WebhookPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            changes = uc.WebhookChanges(
                id=str(input.id),
                url=_kept_if_null(input.url),
                query=_unset(input.query),
                team_ids=_kept_if_null(input.team_ids),
                description=_unset(input.description),
                enabled=_kept_if_null(input.enabled),
            )
            webhook = await uc.update_webhook(s.store.webhooks, s.store, s.webhooks, ctx.viewer, changes, ctx.now)
            s.webhooks.changed()
            return {"webhook": Webhook(entity=webhook)}

        return await run(WebhookPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Delete a webhook and its delivery log; nothing more is sent to it." + _WHO,
            {E.FORBIDDEN: _NOT_MANAGER, E.NOT_FOUND: _NO_WEBHOOK},
        )
    )
    async def delete_webhook(self, info: Info, id: Annotated[strawberry.ID, _WEBHOOK_ID]) -> DeleteWebhookPayload:
        ctx = info.context

        async def action():
            deleted = await uc.delete_webhook(ctx.services.store.webhooks, ctx.viewer, str(id))
            return {"deleted_id": strawberry.ID(deleted)}

        return await run(DeleteWebhookPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Give a webhook a new signing secret, returned only this once. For 24 hours "
            "deliveries carry a signature with each secret, so the receiver can switch whenever it likes." + _WHO,
            {E.FORBIDDEN: _NOT_MANAGER, E.NOT_FOUND: _NO_WEBHOOK},
        )
    )
    async def rotate_webhook_secret(
        self, info: Info, id: Annotated[strawberry.ID, _WEBHOOK_ID]
    ) -> RotateWebhookSecretPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            webhook, secret = await uc.rotate_webhook_secret(
                s.store.webhooks, s.webhooks.secrets, ctx.viewer, str(id), ctx.now
            )
            s.webhooks.changed()
            return {"webhook": Webhook(entity=webhook), "secret": secret}

        return await run(RotateWebhookSecretPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Send a webhook's events again from an event id: that event and every later one, "
            "in order, with their original `webhook-id`s, then new events as usual. It sets the webhook's place: "
            "an id after an event that keeps failing skips that event (and any before it not yet delivered)." + _WHO,
            {
                E.FORBIDDEN: _NOT_MANAGER,
                E.NOT_FOUND: _NO_WEBHOOK,
                E.INVALID_INPUT: "`fromEventId` is not an event id, is newer than the newest event, or older than "
                "the events still kept.",
            },
        )
    )
    async def redeliver_webhook(
        self, info: Info, input: Annotated[RedeliverWebhookInput, strawberry.argument(description="What to resend.")]
    ) -> WebhookPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            webhook = await uc.redeliver_webhook(
                s.store.webhooks, s.store.events, ctx.viewer, str(input.webhook_id), str(input.from_event_id), ctx.now
            )
            s.webhooks.changed()
            return {"webhook": Webhook(entity=webhook)}

        return await run(WebhookPayload, action)

    @strawberry.mutation(
        description=mutation_description(
            "Send a test request to a webhook now, signed like every delivery, with the body "
            '`{"extensions": {"ping": {"webhookId", "at"}}}`; answers how it went. When it gets through, an event '
            "waiting for its retry is tried at once." + _WHO,
            {E.FORBIDDEN: _NOT_MANAGER, E.NOT_FOUND: _NO_WEBHOOK},
        )
    )
    async def ping_webhook(self, info: Info, id: Annotated[strawberry.ID, _WEBHOOK_ID]) -> PingWebhookPayload:
        ctx = info.context
        s = ctx.services

        async def action():
            webhook = await uc.webhook_of(s.store.webhooks, ctx.viewer, str(id))
            sealed = await s.store.webhooks.secrets_of(webhook.org_id, webhook.id)
            delivery = await s.webhooks.ping(webhook, sealed)
            return {"delivery": WebhookDelivery(entity=delivery)}

        return await run(PingWebhookPayload, action)
