"""Setting a member's availability (AVAILABLE or AWAY); the rules are :mod:`domain.availability`."""

from __future__ import annotations

from datetime import datetime

from domain.availability import is_online
from domain.entities import Member
from domain.enums import Availability
from domain.errors import forbidden, not_found
from domain.ports import AvailabilitySink, AvailabilityStore
from domain.validation import is_id
from domain.visibility import Viewer


async def set_availability(
    store: AvailabilityStore,
    events: AvailabilitySink,
    viewer: Viewer,
    availability: Availability,
    member_id: str | None,
    now: datetime,
) -> Member:
    """Sets the viewer's availability, or (organization owners and admins) another member's.

    Only a change is announced (AVAILABILITY), to the organization's members.
    """
    if viewer.app is not None:
        raise forbidden("Apps have no availability: only members set theirs.")
    target = viewer.member_id if member_id is None else member_id
    if target != viewer.member_id and not viewer.is_org_admin:
        raise forbidden("Only organization owners and admins may set another member's availability.")
    if not is_id(target):
        raise not_found("member", "memberId")
    found = await store.set_availability(viewer.org_id, target, availability)
    if found is None:
        raise not_found("member", "memberId")
    member, before = found
    if before is not availability:
        await events.publish_availability(member, is_online(member, now), now)
    return member
