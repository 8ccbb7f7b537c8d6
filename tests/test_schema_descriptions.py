"""A described schema: every type, field, argument, enum value and input field.

Two checks of the same promise. ``graphql-schema-linter`` (pinned in
``tools/schema-lint``, installed here with ``npm ci`` when missing) runs its
description rules over the exported SDL, as frontends and operators would; a
walk of the built graphql-core schema checks the same without npm. Mutation
descriptions must also list the error codes they can return.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import subprocess
import textwrap
from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
)

from api.cli import export_schema
from api.graphql.descriptions import AUTHENTICATION, ERRORS_HEADING
from api.graphql.schema import build_schema
from api.settings import Settings
from domain.enums import ErrorCode
from tests.npm_tools import installed_tool

ROOT = Path(__file__).resolve().parent.parent
LINT_DIR = ROOT / "tools" / "schema-lint"
LINTER_PACKAGE = LINT_DIR / "node_modules" / "graphql-schema-linter"
LINTER = LINTER_PACKAGE / "lib" / "cli.js"

# The rules the issue names; the linter's other description rules are found in
# its rules folder, so an upgrade that adds one is run too.
NAMED_RULES = {
    "types-have-descriptions",
    "fields-have-descriptions",
    "arguments-have-descriptions",
    "enum-values-have-descriptions",
    "input-object-values-have-descriptions",
}
PUBLIC_MUTATIONS = {"login", "completePasswordReset"}
# Never in a payload's `errors`: they come as top-level errors (extensions.code).
TOP_LEVEL_CODES = {ErrorCode.UNAUTHENTICATED, ErrorCode.SERVICE_UNAVAILABLE}


@pytest.fixture(scope="session")
def linter() -> list[str]:
    """The command that runs the pinned linter, installed from the lock file first if needed."""
    node, _ = installed_tool("schema-lint")
    return [node, str(LINTER)]


@pytest.fixture(scope="session")
def description_rules() -> list[str]:
    """Every description rule the installed linter has (``*_description*.js`` in its rules folder)."""
    names = {path.stem.replace("_", "-") for path in (LINTER_PACKAGE / "lib" / "rules").glob("*.js")}
    return sorted(name for name in names if "description" in name)


def lint(command: list[str], rules: list[str], sdl: str, directory: Path) -> list[dict]:
    """The linter's complaints about ``sdl`` under ``rules``."""
    schema_file = directory / "schema.graphql"
    schema_file.write_text(sdl)
    # Run away from the repository, so no configuration file there changes the rules.
    done = subprocess.run(
        [*command, "--rules", ",".join(rules), "--format", "json", str(schema_file)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), f"graphql-schema-linter failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)["errors"]


def test_the_linter_has_every_named_description_rule(linter, description_rules):
    assert set(description_rules) >= NAMED_RULES, description_rules


def test_the_linter_reports_every_kind_of_missing_description(linter, description_rules, tmp_path):
    """The harness itself: an undescribed SDL gets a complaint from each named rule."""
    undescribed = """
        type Query { item(id: ID!): Item }
        type Item { id: ID! kind: Kind }
        enum Kind { A }
        input ItemInput { id: ID! }
        type Mutation { save(input: ItemInput!): Item }
    """
    reported = {error["rule"] for error in lint(linter, description_rules, undescribed, tmp_path)}
    assert reported >= NAMED_RULES, reported


def test_the_exported_schema_passes_the_description_rules(linter, description_rules, tmp_path):
    errors = lint(linter, description_rules, export_schema(), tmp_path)
    offenders = [f"line {e['location']['line']}: {e['message']} ({e['rule']})" for e in errors]
    assert not offenders, f"{len(offenders)} description problem(s):\n" + "\n".join(offenders)


def undescribed(schema: GraphQLSchema) -> list[str]:
    """Every type, field, argument, enum value, input field and directive of ``schema`` without a description."""
    missing: list[str] = []

    def check(what: str, description: str | None) -> None:
        if not (description or "").strip():
            missing.append(what)

    for name, type_ in schema.type_map.items():
        if name.startswith("__"):
            continue
        check(name, type_.description)
        if isinstance(type_, (GraphQLObjectType, GraphQLInterfaceType)):
            for field_name, field in type_.fields.items():
                check(f"{name}.{field_name}", field.description)
                for arg_name, arg in field.args.items():
                    check(f"{name}.{field_name}({arg_name})", arg.description)
        elif isinstance(type_, GraphQLInputObjectType):
            for field_name, field in type_.fields.items():
                check(f"{name}.{field_name}", field.description)
        elif isinstance(type_, GraphQLEnumType):
            for value_name, value in type_.values.items():
                check(f"{name}.{value_name}", value.description)
    for directive in schema.directives:
        check(f"@{directive.name}", directive.description)
        for arg_name, arg in directive.args.items():
            check(f"@{directive.name}({arg_name})", arg.description)
    return missing


@pytest.fixture(scope="module")
def strawberry_schema():
    return build_schema(Settings())


@pytest.fixture(scope="module")
def schema(strawberry_schema) -> GraphQLSchema:
    return strawberry_schema._schema


def test_every_schema_element_has_a_description(schema):
    missing = undescribed(schema)
    assert not missing, f"{len(missing)} without a description:\n" + "\n".join(missing)


def test_the_walk_finds_what_lacks_a_description():
    """The walk itself, on a schema with one undescribed element of each kind."""
    from graphql import build_schema as from_sdl

    sdl = '''
        """Described."""
        type Query {
          """Described."""
          item(id: ID!): Item
        }
        type Item { id: ID! kind: Kind }
        enum Kind { A }
        input ItemInput { id: ID! }
        """Described."""
        type Mutation {
          """Described."""
          save("""Described.""" input: ItemInput!): Item
        }
    '''
    missing = set(undescribed(from_sdl(sdl)))
    assert {"Query.item(id)", "Item", "Item.id", "Kind", "Kind.A", "ItemInput", "ItemInput.id"} <= missing
    assert not {"Query", "Query.item", "Mutation", "Mutation.save", "Mutation.save(input)"} & missing


def documented_codes(description: str) -> list[str]:
    """The codes listed under the description's error heading."""
    _, heading, rest = description.partition(ERRORS_HEADING)
    if not heading:
        return []
    return re.findall(r"^- `([A-Z_]+)`: \S", rest.split("\n\n")[0].strip(), flags=re.MULTILINE)


def test_every_mutation_lists_its_error_codes_and_whether_it_needs_a_token(schema):
    mutations = schema.mutation_type.fields
    assert set(mutations) >= PUBLIC_MUTATIONS
    known = {code.value for code in ErrorCode}
    top_level = {code.value for code in TOP_LEVEL_CODES}
    for name, field in mutations.items():
        codes = documented_codes(field.description)
        assert codes, f"{name}: no error codes listed under {ERRORS_HEADING!r}"
        assert set(codes) <= known - top_level, f"{name}: not codes a payload carries: {set(codes) - known}"
        assert len(codes) == len(set(codes)), f"{name}: a code listed twice"
        if name in PUBLIC_MUTATIONS:
            assert AUTHENTICATION not in field.description, name
        else:
            assert field.description.endswith(AUTHENTICATION), f"{name}: doesn't say it needs a token"


def reachable_codes(func, seen: set | None = None) -> set[ErrorCode]:
    """The error codes ``func`` can raise, found by reading its code and what it refers to.

    Every ``ErrorCode.X`` in the body of ``func`` counts, and so do the codes of
    every function of ``domain`` or ``api.graphql`` its body names (a call, or a
    use case handed to a helper), recursively: ``not_found``, ``invalid`` and
    ``forbidden`` are such functions. Decorators are not read, so a mutation's
    own description can't vouch for itself. Methods of the ports (store, event
    log) are not followed: they raise no refusal.
    """
    seen = set() if seen is None else seen
    func = inspect.unwrap(func)
    if func in seen:
        return set()
    seen.add(func)
    tree = ast.parse(textwrap.dedent(inspect.getsource(func))).body[0]
    assert isinstance(tree, (ast.FunctionDef, ast.AsyncFunctionDef)), func
    codes: set[ErrorCode] = set()
    for statement in tree.body:
        for node in ast.walk(statement):
            target = _resolve(node, func.__globals__)
            if isinstance(target, ErrorCode):
                codes.add(target)
            elif inspect.isfunction(target) and target.__module__.startswith(("domain.", "api.graphql.")):
                codes |= reachable_codes(target, seen)
    return codes


def _resolve(node: ast.AST, namespace: dict):
    """What a global name, or an attribute of a module or enum, refers to (None for anything else)."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, namespace)
        if inspect.ismodule(owner) or owner is ErrorCode:
            return getattr(owner, node.attr, None)
    return None


def test_reachable_codes_follows_calls_and_ignores_decorators():
    from domain.usecases import rooms

    assert reachable_codes(rooms.leave_conversation) == {ErrorCode.NOT_FOUND, ErrorCode.NOT_JOINED}
    assert reachable_codes(rooms.load_visible) == {ErrorCode.NOT_FOUND}


def test_mutations_document_exactly_the_codes_their_code_can_raise(strawberry_schema, schema):
    """Read from domain/usecases and the resolvers: a new refusal needs its line in the description."""
    from strawberry.utils.str_converters import to_camel_case

    graphql_mutations = schema.mutation_type.fields
    checked = set()
    for field in strawberry_schema.get_type_by_name("Mutation").fields:
        name = field.graphql_name or to_camel_case(field.python_name)
        raised = {code.value for code in reachable_codes(field.base_resolver.wrapped_func)}
        assert raised, f"{name}: no error code found in its code"
        documented = set(documented_codes(graphql_mutations[name].description))
        assert documented == raised, (
            f"{name}: undocumented {sorted(raised - documented)}, "
            f"documented but never raised {sorted(documented - raised)}"
        )
        checked.add(name)
    assert checked == set(graphql_mutations)
