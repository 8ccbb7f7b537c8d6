"""The shape of the house, checked: who may touch the database, and what the domain's ports are.

Read from the source tree (and, for the ports, from the imported classes), so
a module that starts querying a collection outside ``api/store/``, a port
method no use case calls, or a store that drifts from its port fails here,
by name, before review.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Protocol

import pytest

import domain.ports as ports
from api.auth import Passwords
from api.channels.credentials import ChannelCredentials
from api.events import EventLog
from api.store.events import EventStore
from api.store.files import GridFiles
from api.store.mongo import MongoStore
from api.store.notifications import Notifications
from api.store.rate_limits import RateLimits
from api.store.webhooks import Webhooks
from api.webhooks import WebhookService
from api.webhooks.signing import WebhookSecrets
from api.widget.secrets import IdentitySecretBox
from domain.usecases import webhooks
from domain.usecases.inbound import InboundStore
from domain.usecases.rooms import TransferStore
from domain.usecases.widget import IdentitySecrets, RateCounters, WidgetStore

ROOT = Path(__file__).resolve().parent.parent
OPERATOR = re.compile(r"^\$[A-Za-z]+$")
COLLECTION_METHODS = {
    "find_one",
    "find_one_and_update",
    "find_one_and_delete",
    "find_one_and_replace",
    "insert_one",
    "insert_many",
    "update_one",
    "update_many",
    "replace_one",
    "delete_one",
    "delete_many",
    "aggregate",
    "count_documents",
    "estimated_document_count",
    "distinct",
    "watch",
    "bulk_write",
    "create_index",
}
# Functions outside api/store/ still allowed to query, each with the reason it waits.
PENDING: dict[tuple[str, str], str] = {}


def violations(source: str) -> list[tuple[int, str]]:
    """(line, what) for every MongoDB operator, database handle, collection or collection method in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and OPERATOR.match(node.value):
            found.append((node.lineno, f"operator {node.value!r}"))
        elif isinstance(node, ast.Attribute) and node.attr in ("db", "collection"):
            found.append((node.lineno, f"`.{node.attr}`"))
        elif (
            isinstance(node, (ast.Attribute, ast.Subscript))
            and isinstance(node.value, ast.Name)
            and node.value.id in ("db", "collection")
        ):
            found.append((node.lineno, f"`{node.value.id}` queried"))
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in COLLECTION_METHODS
        ):
            found.append((node.lineno, f"collection method `.{node.func.attr}()`"))
    return found


def function_lines(source: str, qualified: str) -> range:
    cls, _, name = qualified.rpartition(".")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == name:
                    return range(item.lineno, item.end_lineno + 1)
    raise AssertionError(f"{qualified} not found")


def outside_the_store() -> list[Path]:
    return [p for p in sorted((ROOT / "api").rglob("*.py")) if "store" not in p.relative_to(ROOT / "api").parts[:1]]


def test_the_check_sees_what_it_should():
    assert {
        what
        for _, what in violations(
            'await self.db.events.update_one({"_id": 1}, {"$set": {"a": 1}})\ndb["teams"]\nx.collection\n'
        )
    } == {"`.db`", "collection method `.update_one()`", "operator '$set'", "`db` queried", "`.collection`"}
    # handing the database to the store's constructors (the app's wiring) is not querying it
    assert violations('"price in $"\nname.find("x")\nlog.info("$ set")\nstore = MongoStore(db)\n') == []


def test_only_the_store_names_a_collection_or_writes_a_mongodb_operator():
    found = []
    for path in outside_the_store():
        relative = path.relative_to(ROOT).as_posix()
        source = path.read_text()
        allowed = set()
        for pending_path, function in PENDING:
            if pending_path == relative:
                allowed |= set(function_lines(source, function))
        found += [f"{relative}:{line}: {what}" for line, what in violations(source) if line not in allowed]
    assert not found, "move these into a repository under api/store/:\n" + "\n".join(found)


def test_every_pending_exception_is_still_needed():
    for (path, function), reason in PENDING.items():
        source = (ROOT / path).read_text()
        lines = set(function_lines(source, function))
        assert any(line in lines for line, _ in violations(source)), (
            f"{path} {function} no longer queries ({reason}): remove it from PENDING"
        )


PORTS = [
    cls
    for _, cls in inspect.getmembers(ports, inspect.isclass)
    if cls.__module__ == ports.__name__ and issubclass(cls, Protocol)
]


def port_methods(port: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(port).items()
        if callable(member) and not name.startswith("_")
    }


def test_every_port_method_is_called_by_a_use_case():
    use_cases = "\n".join(p.read_text() for p in sorted((ROOT / "domain" / "usecases").glob("*.py")))
    unused = [
        f"{port.__name__}.{name}"
        for port in PORTS
        for name in port_methods(port)
        if not re.search(rf"\.{name}\(", use_cases)
    ]
    assert not unused, f"ports no use case calls: {unused}"


# The only `Any` left: a customer's changes are free-form fields until they are data of their own.
LOOSE = {("ConversationStore", "update_customer", "changes")}


def test_ports_are_typed():
    loose = []
    for port in PORTS:
        for name, signature in port_methods(port).items():
            assert signature.return_annotation is not inspect.Signature.empty, f"{port.__name__}.{name} -> ?"
            for parameter in list(signature.parameters.values())[1:]:
                annotation = parameter.annotation
                assert annotation is not inspect.Parameter.empty, f"{port.__name__}.{name}({parameter.name})"
                if "Any" in str(annotation) and (port.__name__, name, parameter.name) not in LOOSE:
                    loose.append(f"{port.__name__}.{name}({parameter.name}: {annotation})")
    assert not loose, f"use a domain type: {loose}"


@pytest.mark.parametrize(
    "implementation, port",
    [
        (MongoStore, ports.AccountStore),
        (MongoStore, ports.ConversationStore),
        (MongoStore, ports.TeamDirectory),
        (MongoStore, ports.LoginAttempts),
        (MongoStore, ports.ApiKeyStore),
        (MongoStore, InboundStore),
        (MongoStore, TransferStore),
        (MongoStore, WidgetStore),
        (RateLimits, RateCounters),
        (IdentitySecretBox, IdentitySecrets),
        (Notifications, ports.NotificationStore),
        (GridFiles, ports.FileSaver),
        (Passwords, ports.PasswordHasher),
        (EventLog, ports.EventSink),
        (ChannelCredentials, ports.CredentialSealer),
        (Webhooks, webhooks.WebhookStore),
        (EventStore, webhooks.EventPositions),
        (MongoStore, webhooks.Teams),
        (MongoStore, webhooks.AdminDirectory),
        (WebhookSecrets, webhooks.SecretSealer),
        (WebhookService, webhooks.Checks),
    ],
    ids=lambda v: v.__name__,
)
def test_the_implementations_keep_to_the_ports(implementation, port):
    """What Python can't check without a type checker: same methods, same parameters, same async-ness."""
    for name, expected in port_methods(port).items():
        method = getattr(implementation, name, None)
        assert method is not None, f"{implementation.__name__} lacks {port.__name__}.{name}"
        actual = inspect.signature(method)
        want = [p.name for p in expected.parameters.values() if p.name != "self"]
        have = [p.name for p in actual.parameters.values() if p.name != "self"]
        assert have == want, f"{implementation.__name__}.{name}{actual} vs {port.__name__}.{name}{expected}"
        assert inspect.iscoroutinefunction(method) == inspect.iscoroutinefunction(getattr(port, name)), name
