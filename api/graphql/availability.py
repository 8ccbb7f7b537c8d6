"""Agent availability in the schema: `setAvailability`, `Member.availability` / `Member.online`
(:mod:`api.graphql.types`) and the `availabilityChanged` stream.

The rules are :mod:`domain.availability` and :mod:`domain.usecases.availability`;
presence from connections is :mod:`api.presence`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from api.graphql.descriptions import mutation_description
from api.graphql.enums import Availability
from api.graphql.payloads import run
from api.graphql.types import Member, UserError
from api.store.codec import stored_dt
from api.store.events import AVAILABILITY
from domain.enums import ErrorCode as E
from domain.usecases import availability as use


@strawberry.input(description="The availability to set.")
class SetAvailabilityInput:
    availability: Availability = strawberry.field(description="AVAILABLE (takes new work) or AWAY.")
    member_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Whose availability (organization owners and admins may set any member's); omitted: yours.",
    )


@strawberry.type(description="Result of `setAvailability`.")
class SetAvailabilityPayload:
    member: Member | None = strawberry.field(default=None, description="The member, with their availability.")
    errors: list[UserError] = strawberry.field(description="Why it failed, if it did.")


@strawberry.type(
    description="A member's availability or online state changed. Carries their id and states only; "
    "`member` reads the rest as `members` does."
)
class AvailabilityEvent:
    id: strawberry.ID = strawberry.field(description="Event id, monotonic across the organization's events.")
    member_id: strawberry.ID = strawberry.field(description="The member whose state changed.")
    availability: Availability = strawberry.field(description="What the member set, after the change.")
    online: bool = strawberry.field(description="Whether the member had a connection open, after the change.")
    at: datetime = strawberry.field(description="When it changed.")

    @strawberry.field(description="The member (null if no longer in your organization).")
    async def member(self, info: Info) -> Member | None:
        found = await info.context.loaders.member.load(str(self.member_id))
        return Member(entity=found) if found else None


@strawberry.type
class AvailabilityMutation:
    @strawberry.mutation(
        description=mutation_description(
            "Set your availability (or, for owners and admins, another member's). While a member is online and "
            "AVAILABLE, new conversations and grab offers of their teams go to them (and the other available "
            "members who can take them) rather than to the whole team. A change is announced to the "
            "organization (`availabilityChanged`); setting the same value again announces nothing.",
            {
                E.FORBIDDEN: "you set another member's availability without being an owner or admin, or you are "
                "an app (apps have no availability).",
                E.NOT_FOUND: "no such member in your organization (`memberId`).",
            },
        )
    )
    async def set_availability(
        self,
        info: Info,
        input: Annotated[SetAvailabilityInput, strawberry.argument(description="The availability to set.")],
    ) -> SetAvailabilityPayload:
        ctx = info.context

        async def action():
            member_id = str(input.member_id) if input.member_id is not None else None
            member = await use.set_availability(
                ctx.services.store, ctx.services.events, ctx.viewer, input.availability, member_id, ctx.now
            )
            return {"member": Member(entity=member)}

        return await run(SetAvailabilityPayload, action)


@strawberry.type
class AvailabilitySubscription:
    @strawberry.subscription(
        description="Your organization's members going online or offline (opening their first, or closing their "
        "last, connection) and setting their availability, as it happens (not replayed)."
    )
    async def availability_changed(self, info: Info) -> AsyncGenerator[AvailabilityEvent, None]:
        ctx = info.context
        hub = ctx.services.hub
        viewer = ctx.viewer
        subscription = hub.subscribe(viewer.org_id, frozenset(), topic=AVAILABILITY)
        try:
            while True:
                dispatched = await subscription.queue.get()
                if subscription.overflowed:
                    return
                doc = dispatched.doc
                if doc.get("kind") != AVAILABILITY or doc.get("org_id") != viewer.org_id:
                    continue
                ctx.refresh(viewer, ctx.services.clock())
                yield AvailabilityEvent(
                    id=strawberry.ID(str(doc["_id"])),
                    member_id=strawberry.ID(doc["member_id"]),
                    availability=stored_availability(doc.get("availability")),
                    online=bool(doc.get("online")),
                    at=stored_dt(doc["at"]),
                )
        finally:
            hub.unsubscribe(subscription)


def stored_availability(value: object) -> Availability:
    return Availability.AVAILABLE if value == Availability.AVAILABLE.value else Availability.AWAY
