"""Fields whose answer depends on who asks, marked where they are declared.

Shared execution (:mod:`api.graphql.sharing`) and multiplexed streams
(:mod:`api.graphql.multiplex`) hand one result to many subscribers with the
same operation, variables and visibility. A field that reads the caller beyond
what their visibility decides (``joinedByMe``, the caller's copy of a team)
would hand one member's answer to all of them, so its resolver carries
:class:`PerViewer`, and an operation selecting a marked field is shared only
among one member's own connections. The marks are read from the schema once;
``tests/test_viewer_fields.py`` fails when a resolver reads the viewer without
one.
"""

from __future__ import annotations

import weakref
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    get_named_type,
    is_abstract_type,
)
from strawberry.extensions import FieldExtension

from api.graphql.strawberry_adapter import strawberry_field_of


class PerViewer(FieldExtension):
    """Marks a field whose answer depends on the member asking, not only on what they may see.

    It only marks: it takes no part in resolving, so a marked field costs nothing more to run.
    """


Marks = frozenset[tuple[str, str]]
_marks: weakref.WeakKeyDictionary[GraphQLSchema, Marks] = weakref.WeakKeyDictionary()


def per_viewer_fields(schema: GraphQLSchema) -> Marks:
    """(type name, field name) of every marked field, collected once per schema."""
    found = _marks.get(schema)
    if found is None:
        found = _marks[schema] = frozenset(
            (type_.name, name)
            for type_ in schema.type_map.values()
            if not type_.name.startswith("__")
            for name, field in (getattr(type_, "fields", None) or {}).items()
            if _is_marked(strawberry_field_of(field))
        )
    return found


def _is_marked(field: Any) -> bool:
    return field is not None and any(isinstance(e, PerViewer) for e in getattr(field, "extensions", ()))


def selects_per_viewer_field(schema: GraphQLSchema, parent, selection_set, fragments: dict) -> bool:
    """Whether the selection, made on ``parent`` (a schema type), reaches a marked field."""
    marks = per_viewer_fields(schema)
    return bool(marks) and _reaches(schema, marks, parent, selection_set, fragments, frozenset())


def _reaches(schema: GraphQLSchema, marks: Marks, parent, selection_set, fragments: dict, seen: frozenset) -> bool:
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            name = selection.name.value
            if _marked_on(schema, marks, parent, name):
                return True
            definition = (getattr(parent, "fields", None) or {}).get(name)
            if definition is not None and _reaches(
                schema, marks, get_named_type(definition.type), selection.selection_set, fragments, seen
            ):
                return True
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            target = schema.get_type(condition.name.value) if condition else parent
            if _reaches(schema, marks, target, selection.selection_set, fragments, seen):
                return True
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                target = schema.get_type(fragment.type_condition.name.value)
                if _reaches(schema, marks, target, fragment.selection_set, fragments, seen | {name}):
                    return True
    return False


def _marked_on(schema: GraphQLSchema, marks: Marks, parent, name: str) -> bool:
    if parent is None:
        return False
    if is_abstract_type(parent):
        return any((t.name, name) in marks for t in schema.get_possible_types(parent))
    return (parent.name, name) in marks


__all__ = ["PerViewer", "per_viewer_fields", "selects_per_viewer_field"]
