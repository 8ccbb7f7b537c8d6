"""The conversations page's related objects, asked of the loaders before its rows resolve.

Each row's ``customer``, ``representatives`` and ``owner`` come from DataLoaders,
which batch them into one command per kind. Asked row by row, every row becomes
awaitable: graphql-core then completes the whole page through coroutines, tasks
and gathers, about a third of the page's CPU. The page's resolver knows all its
rows, so it asks the loaders for what the query selects on ``edges.node`` first
(the same batches: one ``customers`` and one ``members`` command, as before), and
the row resolvers find their objects already loaded and answer synchronously
(:func:`api.graphql.context.now_or_later`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode
from strawberry.types import Info

from api.graphql.strawberry_adapter import graphql_info_of
from domain.entities import Conversation


def node_fields(info: Info) -> set[str]:
    """Names of the fields selected on ``edges { node { … } }`` of the connection being resolved."""
    raw = graphql_info_of(info)
    fragments = raw.fragments
    names: set[str] = set()
    for connection in raw.field_nodes:
        for edges in _fields(connection.selection_set, fragments):
            if edges.name.value != "edges":
                continue
            for node in _fields(edges.selection_set, fragments):
                if node.name.value == "node":
                    names.update(f.name.value for f in _fields(node.selection_set, fragments))
    return names


def _fields(
    selection_set: SelectionSetNode | None, fragments: dict, seen: frozenset = frozenset()
) -> Iterable[FieldNode]:
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                yield from _fields(fragment.selection_set, fragments, seen | {name})


async def prefetch_page(info: Info, conversations: list[Conversation]) -> None:
    """Loads the selected related objects of a page's rows, in the batches the rows would make.

    A failed batch is left in the loaders: each row's field then fails as it did
    when it asked alone, and the rest of the page is still answered.
    """
    if not conversations:
        return
    selected = node_fields(info)
    loaders = info.context.loaders
    loads = []
    if "customer" in selected:
        loads.append(loaders.customer.load_many([c.customer_id for c in conversations]))
    member_ids: list[str] = []
    if "representatives" in selected:
        member_ids += [m for c in conversations for m in c.participants]
    if "owner" in selected:
        member_ids += [c.owner_id for c in conversations if c.owner_id]
    if member_ids:
        loads.append(loaders.member.load_many(member_ids))
    if loads:
        await asyncio.gather(*loads, return_exceptions=True)
