"""Agent availability: who is ready for new work, and who hears of it first.

A member is *online* while one of their WebSocket connections is open on any
instance: each instance keeps a heartbeat per connected member, and a
heartbeat counts until ``online_until`` (so a crashed instance's connections
stop counting after the presence timeout). A member *sets* their
availability, AVAILABLE or AWAY (AWAY until they first say AVAILABLE, so an
organization whose consoles don't use it keeps today's notifications).
A member is *ready* when online and AVAILABLE.

New work (a new, reopened, released or team-transferred conversation) is
announced to the members who can take it and are ready; when none is ready,
to everyone in the team as before. In a GRAB team the representatives take
conversations: its admins, who oversee the team and can't grab, keep
receiving every announcement either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from domain.entities import Member, Team
from domain.enums import Availability, TeamMode, TeamRole


def is_online(member: Member, now: datetime) -> bool:
    """Whether one of the member's connections counted at ``now``."""
    return member.online_until is not None and member.online_until > now


def is_ready(member: Member, now: datetime) -> bool:
    """Online and AVAILABLE (and not deactivated): the members new work goes to first."""
    return member.active and member.availability is Availability.AVAILABLE and is_online(member, now)


def ready_ids(members: Iterable[Member], now: datetime) -> frozenset[str]:
    return frozenset(m.id for m in members if is_ready(m, now))


def announced_to(team: Team, ready: frozenset[str]) -> list[str]:
    """Who hears of new work in ``team``, in membership order.

    Those who can take it (every member of a COLLABORATION team, the
    representatives of a GRAB team) and are ready; plus a GRAB team's admins.
    Nobody who can take it is ready: the whole team.
    """
    grab = team.mode is TeamMode.GRAB
    takers = [m.member_id for m in team.memberships if not grab or m.role is TeamRole.REPRESENTATIVE]
    if not any(member_id in ready for member_id in takers):
        return [m.member_id for m in team.memberships]
    return [
        m.member_id
        for m in team.memberships
        if m.member_id in ready and m.member_id in takers or (grab and m.role is TeamRole.ADMIN)
    ]
