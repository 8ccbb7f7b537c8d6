"""Fields read directly (api/graphql/direct_fields.py) answer exactly as graphql-core does.

The same small schema is executed twice per query: once with strawberry's own executor,
once with ours. Data and errors (messages, paths, locations) must be identical. That
covers aliases, fragments, repeated fields, ``@include``/``@skip``, ``__typename``,
enums, custom scalars, a resolver that raises, a null where the schema promises a
value (the null goes up to the parent), a value the scalar refuses, and objects read
directly whose selection fails, at once or after awaiting. The page
benchmark's query, executed on the real schema, must skip graphql-core's per-field work
for its leaves, or the shortcut has silently stopped applying.
"""

from __future__ import annotations

import asyncio
import enum
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import strawberry
from graphql.execution.executor import Executor

from api.graphql import strawberry_adapter as adapter
from api.graphql.direct_fields import DirectFieldsExecutor
from api.graphql.schema import build_schema
from api.graphql.strawberry_adapter import mark_source_only_resolvers, resolve_directly
from bench import pagecpu
from bench.page import FIRST


@strawberry.enum
class Mood(enum.Enum):
    HAPPY = "HAPPY"
    GRUMPY = "GRUMPY"


@strawberry.type
class Pet:
    name: str
    nickname: str | None
    mood: Mood
    born: datetime
    legs: int

    @strawberry.field
    def shout(self) -> str:
        return self.name.upper()

    @strawberry.field
    def broken(self) -> str:
        raise RuntimeError("the resolver failed")

    @strawberry.field
    async def later(self) -> str:
        return f"{self.name} later"

    @strawberry.field
    def greeting(self, info: strawberry.Info) -> str:
        return f"{info.context['hello']} {self.name}"

    @strawberry.field
    def where(self, info: strawberry.Info) -> str:
        # more than info.context: the resolve info is built for it
        return f"{info.field_name} at {'/'.join(str(p) for p in info.path.as_list())}"

    @strawberry.field
    def owner_name(self, info: strawberry.Info) -> str | None:
        return info.context.get("owner")

    @strawberry.field
    def refused(self, info: strawberry.Info) -> int:
        return "not a number"  # type: ignore[return-value]

    @strawberry.field
    def failing(self, info: strawberry.Info) -> str | None:
        raise RuntimeError(f"{info.context['hello']}: this one fails")

    @strawberry.field
    def soon(self, info: strawberry.Info) -> str:
        return asyncio.sleep(0, f"{self.name} soon")  # type: ignore[return-value]

    @strawberry.field
    def friends(self, info: strawberry.Info) -> list[Pet]:
        return [pet("Fido"), SimpleNamespace(name=None)]  # type: ignore[list-item]

    @strawberry.field
    def best_friend(self, info: strawberry.Info) -> Pet:
        return pet(f"{self.name}'s friend")

    @strawberry.field
    def initial(self, upper: bool = False) -> str:
        return self.name[0].upper() if upper else self.name[0]

    @strawberry.field
    async def later_broken(self) -> str:
        raise RuntimeError("the awaited resolver failed")


@strawberry.type
class Home:
    street: str

    @strawberry.field
    async def alarm(self) -> str:
        return "armed"

    @strawberry.field
    def broken(self) -> str:
        raise RuntimeError("no such home")


@strawberry.type
class Owner:
    name: str
    pets: list[Pet]
    favourite: Pet | None
    home: Home
    second_home: Home | None


def pet(name: str, **overrides) -> Pet:
    values = {"nickname": None, "mood": Mood.HAPPY, "born": datetime(2020, 1, 2, tzinfo=UTC), "legs": 4}
    return Pet(name=name, **{**values, **overrides})


@strawberry.type
class Query:
    @strawberry.field
    def owner(self) -> Owner:
        pets = [pet("Rex", nickname="R"), pet("Tom", mood=Mood.GRUMPY)]
        return Owner(name="Ann", pets=pets, favourite=pets[0], home=Home(street="Main"), second_home=None)

    @strawberry.field
    def damaged(self) -> Owner:
        # a pet whose stored values break the schema's promises
        pets = [pet("Ok"), SimpleNamespace(name=None, nickname=None, mood="??", born="x", legs="many")]
        second = SimpleNamespace(street=None)
        return Owner(name="Bob", pets=pets, favourite=None, home=None, second_home=second)  # type: ignore[arg-type]


def schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    plain = strawberry.Schema(query=Query)
    ours = strawberry.Schema(query=Query, execution_context_class=DirectFieldsExecutor)
    resolve_directly(ours)
    marked = mark_source_only_resolvers(ours)
    assert {"Pet.name", "Pet.mood", "Pet.born", "Pet.shout", "Pet.broken", "Owner.name", "Owner.home"} <= set(marked)
    assert not {"Pet.later", "Pet.greeting", "Pet.initial", "Home.alarm"} & set(marked)  # awaits, info, arguments
    with_info = {
        f"{t.name}.{n}"
        for t in (ours._schema.get_type("Pet"),)
        for n, f in t.fields.items()
        if adapter.source_and_info_resolver(f)
    }
    assert {"Pet.greeting", "Pet.where", "Pet.friends", "Pet.soon"} <= with_info
    assert not {"Pet.later", "Pet.initial", "Pet.name"} & with_info
    return plain, ours


QUERIES = {
    "leaves, objects and lists": "{ owner { name pets { name nickname mood born legs } favourite { name } } }",
    "aliases and repeated fields": "{ owner { n: name name pets { a: name name shout b: shout } } }",
    "fragments and typename": """{ owner { ...O } } fragment O on Owner { __typename name pets { ...P name } }
        fragment P on Pet { __typename mood born }""",
    "include and skip": "query($y: Boolean!) { owner { name @include(if: $y) pets { name @skip(if: $y) mood } } }",
    "resolvers taking info, arguments, awaiting": "{ owner { pets { greeting initial(upper: true) later name } } }",
    "a resolver that raises": "{ owner { pets { name broken mood } } }",
    "nulls and refused values go up to the nullable parent": "{ damaged { name pets { name } } }",
    "an enum value the type does not have": "{ damaged { pets { mood } } }",
    "a scalar that refuses its value": "{ damaged { pets { legs } } }",
    "a custom scalar that refuses its value": "{ damaged { pets { born } } }",
    "a nullable leaf of a damaged object": "{ damaged { pets { nickname } } }",
    "objects read directly, with awaiting fields": """{ owner { home { street alarm } secondHome { street }
        favourite { name later mood } } }""",
    "an object read directly whose field fails": "{ owner { favourite { name broken } home { street } } }",
    "an object read directly whose awaited field fails": "{ owner { name favourite { name laterBroken } } }",
    "a non-null object read directly whose field fails": "{ owner { name home { street broken } } }",
    "a non-null object that is null": "{ damaged { name home { street } } }",
    "a nullable object holding a refused value": "{ damaged { name secondHome { street } } }",
    "an object failing beside an awaiting one": "{ owner { favourite { later } home { alarm broken } } }",
    "resolvers taking info: leaves, lists, objects": """{ owner { pets { where ownerName soon
        bestFriend { name where greeting } friends { name } } } }""",
    "resolvers taking info that fail or return refused values": "{ owner { pets { name failing refused } } }",
    "a list from a resolver taking info with a null where none may be": "{ owner { favourite { friends { name } } } }",
}


def answer(schema: strawberry.Schema, query: str) -> tuple:
    context = {"hello": "Hi", "owner": "Ann"}
    result = asyncio.run(schema.execute(query, variable_values={"y": True}, context_value=context))
    errors = [(e.message, e.path, [(loc.line, loc.column) for loc in e.locations or ()]) for e in result.errors or ()]
    return result.data, sorted(errors, key=repr)


@pytest.mark.parametrize("query", QUERIES.values(), ids=list(QUERIES))
def test_fields_read_directly_answer_exactly_as_graphql_core_does(query):
    plain, ours = schemas()
    assert answer(ours, query) == answer(plain, query)


def test_errors_keep_their_paths_when_fields_are_read_directly():
    _, ours = schemas()
    data, errors = answer(ours, "{ owner { pets { name broken } } }")
    assert data is None  # broken is non-null: the null goes up through the list to the root
    assert [e[1] for e in errors] == [["owner", "pets", 0, "broken"]]
    data, errors = answer(ours, "{ damaged { name pets { name } } }")
    assert data is None and [e[1] for e in errors] == [["damaged", "pets", 1, "name"]]


def test_the_pages_plain_fields_skip_graphql_cores_per_field_work(monkeypatch):
    """The conversations page on the real schema: no row builds graphql-core's resolve info."""
    viewer, members, customers, conversations = pagecpu.world()
    services = pagecpu.services_for(members, customers, conversations)
    schema = build_schema(services.settings)
    assert schema.execution_context_class is not None
    assert issubclass(schema.execution_context_class, DirectFieldsExecutor)
    built = []
    original = Executor.build_resolve_info

    def counting(self, *args, **kwargs):
        field_def, field_nodes, parent_type, _path = args
        built.append(f"{parent_type.name}.{field_nodes[0].name.value}")
        return original(self, *args, **kwargs)

    for cls in schema.execution_context_class.__mro__:
        if "build_resolve_info" in vars(cls):
            monkeypatch.setattr(cls, "build_resolve_info", counting)
    answer = asyncio.run(pagecpu.run_pages(schema, services, viewer, 1))
    assert answer.count('"node"') == FIRST
    # customer, team, channel, representatives, owner, lastMessage, status, online, node
    # only the root field builds one: the rest is read directly, and the resolvers taking
    # info (status, team, customer, representatives, owner, online) read only its context
    assert len(built) <= 2, sorted(set(built))
    direct = {"Conversation.id", "Customer.name", "ConversationEdge.node", "Conversation.status"}
    assert not direct & set(built), sorted(set(built))


def test_plain_leaf_resolvers_are_marked_on_the_real_schema():
    schema = build_schema(pagecpu.Settings())
    marked = set(adapter.mark_source_only_resolvers(schema))
    assert {"Conversation.id", "Customer.name", "Team.mode", "Message.createdAt"} <= marked
    # reads the viewer or the clock: keeps graphql-core's path
    assert not {"Conversation.status", "Conversation.joinedByMe", "Customer.online"} & marked
