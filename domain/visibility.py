"""Who sees which conversation, and who may enter, grab or close it.

The caller is a :class:`Viewer`: a member, their organization role and the
teams they belong to; or an app acting through an API key (:class:`App`), which
sees every conversation of its teams and is never in a room. Visibility is one
criteria tree (:func:`visible_criteria`) so the list query, the counts, a single
lookup and the realtime fan-out all apply the same rule. Anything a viewer can't
see must behave as absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.criteria import (
    Absent,
    Criteria,
    Eq,
    In,
    Nothing,
    all_of,
    any_of,
    matches,
)
from domain.entities import ApiKey, Conversation, Team
from domain.enums import ApiKeyScope, OrgRole, TeamMode, TeamRole


@dataclass(frozen=True, slots=True)
class App:
    """An integration acting through an API key: what its scopes allow, in its teams.

    It sees every conversation of its teams (GRAB teams' grabbed ones too, as a
    team admin does), never another team's, and never joins or grabs.
    ``team_ids`` None: every team of the organization, present and future.
    """

    key_id: str
    scopes: frozenset[ApiKeyScope]
    team_ids: frozenset[str] | None = None

    def sees_team(self, team_id: str) -> bool:
        return self.team_ids is None or team_id in self.team_ids


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks. For an app, ``member_id`` is its API key's id (the actor id of what it
    does; no member has it), ``org_role`` is MEMBER (never an admin) and ``teams`` are
    only its teams."""

    member_id: str
    org_id: str
    org_role: OrgRole
    name: str = ""
    teams: tuple[Team, ...] = field(default=())
    app: App | None = None

    @property
    def is_org_admin(self) -> bool:
        return self.org_role in (OrgRole.OWNER, OrgRole.ADMIN)

    def team(self, team_id: str) -> Team | None:
        for team in self.teams:
            if team.id == team_id:
                return team
        return None

    def team_role(self, team_id: str) -> TeamRole | None:
        team = self.team(team_id)
        return team.role_of(self.member_id) if team else None

    def is_team_admin(self, team_id: str) -> bool:
        return self.team_role(team_id) is TeamRole.ADMIN

    def member_team_ids(self) -> list[str]:
        return [team.id for team in self.teams if team.role_of(self.member_id) is not None]


@dataclass(frozen=True, slots=True)
class Visibility:
    """Everything that decides what a viewer sees, and nothing else.

    Two viewers with equal visibilities see exactly the same conversations, so
    realtime fan-out judges an event once per visibility, not once per
    subscriber. ``member_id`` only matters for GRAB representatives (they see
    unowned conversations and their own); it is None for everyone else.
    """

    org_id: str
    whole_org: bool
    open_team_ids: frozenset[str] = frozenset()
    grab_team_ids: frozenset[str] = frozenset()
    member_id: str | None = None

    @property
    def team_ids(self) -> frozenset[str] | None:
        """Teams whose conversations this viewer may see; None: every team of the organization."""
        return None if self.whole_org else self.open_team_ids | self.grab_team_ids


def app_viewer(key: ApiKey, org_teams: tuple[Team, ...]) -> Viewer:
    """The viewer an API key acts as, given every team of its organization."""
    team_ids = frozenset(key.team_ids) or None
    app = App(key_id=key.id, scopes=frozenset(key.scopes), team_ids=team_ids)
    return Viewer(
        member_id=key.id,
        org_id=key.org_id,
        org_role=OrgRole.MEMBER,
        name=key.name,
        teams=tuple(t for t in org_teams if app.sees_team(t.id)),
        app=app,
    )


def has_scope(viewer: Viewer, scope: ApiKeyScope) -> bool:
    """An app whose API key has ``scope`` (members have no scopes: their role decides)."""
    return viewer.app is not None and scope in viewer.app.scopes


def visibility_of(viewer: Viewer) -> Visibility:
    if viewer.app is not None:
        if viewer.app.team_ids is None:
            return Visibility(org_id=viewer.org_id, whole_org=True)
        return Visibility(org_id=viewer.org_id, whole_org=False, open_team_ids=viewer.app.team_ids)
    if viewer.is_org_admin:
        return Visibility(org_id=viewer.org_id, whole_org=True)
    open_teams: set[str] = set()
    grab_teams: set[str] = set()
    for team in viewer.teams:
        role = team.role_of(viewer.member_id)
        if role is None:
            continue
        if team.mode is TeamMode.GRAB and role is TeamRole.REPRESENTATIVE:
            grab_teams.add(team.id)
        else:
            open_teams.add(team.id)
    return Visibility(
        org_id=viewer.org_id,
        whole_org=False,
        open_team_ids=frozenset(open_teams),
        grab_team_ids=frozenset(grab_teams),
        member_id=viewer.member_id if grab_teams else None,
    )


def visible_criteria(viewer: Viewer | Visibility) -> Criteria:
    """Conversations of the viewer's organization that the viewer may see."""
    visibility = viewer if isinstance(viewer, Visibility) else visibility_of(viewer)
    in_org = Eq("org_id", visibility.org_id)
    if visibility.whole_org:
        return in_org
    parts: list[Criteria] = []
    if visibility.open_team_ids:
        parts.append(In("team_id", tuple(sorted(visibility.open_team_ids))))
    if visibility.grab_team_ids:
        parts.append(
            all_of(
                In("team_id", tuple(sorted(visibility.grab_team_ids))),
                any_of(Absent("owner_id"), Eq("owner_id", visibility.member_id)),
            )
        )
    if not parts:
        return Nothing()
    return all_of(in_org, any_of(*parts))


def can_see(viewer: Viewer | Visibility, conversation: Conversation) -> bool:
    return matches(visible_criteria(viewer), conversation)


def is_grab_representative(viewer: Viewer, conversation: Conversation) -> bool:
    """A representative of a GRAB team must grab before entering (admins never grab)."""
    team = viewer.team(conversation.team_id)
    return (
        team is not None
        and team.mode is TeamMode.GRAB
        and team.role_of(viewer.member_id) is TeamRole.REPRESENTATIVE
        and not viewer.is_org_admin
    )


def can_grab(viewer: Viewer, team: Team) -> bool:
    """Representatives of a GRAB team; never admins, never apps."""
    return (
        viewer.app is None
        and team.mode is TeamMode.GRAB
        and team.role_of(viewer.member_id) is TeamRole.REPRESENTATIVE
        and not viewer.is_org_admin
    )


def is_admin_of(viewer: Viewer, conversation: Conversation) -> bool:
    return viewer.is_org_admin or viewer.is_team_admin(conversation.team_id)


def teams_visible_to(viewer: Viewer, all_teams: tuple[Team, ...]) -> tuple[Team, ...]:
    """Org admins see every team; apps their API key's teams; others the teams they belong to."""
    if viewer.app is not None:
        return tuple(t for t in all_teams if viewer.app.sees_team(t.id))
    if viewer.is_org_admin:
        return all_teams
    return tuple(t for t in all_teams if t.role_of(viewer.member_id) is not None)
