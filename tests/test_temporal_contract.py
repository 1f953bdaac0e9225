"""The Temporal contract is checked, not trusted.

Workflows call activities, start children and send signals by method reference, so mypy
catches a misspelt method. What it cannot catch is a method that is not an activity (or not a
handler), or an activity the worker does not register: Temporal only fails those at run time,
inside a workflow task. These tests read the calls out of the source (workflows, the relay,
the CLI) and check each one against what the worker really registers.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow

from revops.settings import Settings
from store.repo import Store
from worker import WORKFLOWS, WorkerDeps

REPO = Path(__file__).resolve().parent.parent
WORKFLOW_SOURCES = sorted((REPO / "workflows").glob("*.py"))
CLIENT_SOURCES = [
    *sorted((REPO / "gateway").glob("*.py")),
    *sorted((REPO / "starter").glob("*.py")),
    REPO / "worker.py",
]

ACTIVITY_CALLS = frozenset(
    f"{verb}_{kind}{suffix}"
    for verb in ("start", "execute")
    for kind in ("activity", "local_activity")
    for suffix in ("", "_method")
)
WORKFLOW_CALLS = frozenset(
    {
        "start_child_workflow",
        "execute_child_workflow",
        "start_workflow",
        "execute_workflow",
        "get_workflow_handle_for",
        "get_external_workflow_handle_for",
    }
)
HANDLER_CALLS = {"signal": "signals", "query": "queries"}


@dataclass(frozen=True)
class Call:
    """One Temporal call found in the source: which, where, and its first argument."""

    verb: str
    where: str
    target: ast.expr
    node: ast.Call
    module: str


def _calls(paths: list[Path], verbs: Collection[str]) -> Iterator[Call]:
    for path in paths:
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = node.func.value
            if node.func.attr not in verbs or not node.args:
                continue  # ``@workflow.signal(name=...)`` decorators have no positional args
            if (
                isinstance(receiver, ast.Name)
                and receiver.id == "workflow"
                and (node.func.attr in HANDLER_CALLS)
            ):
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            yield Call(node.func.attr, where, node.args[0], node, module)


def _local_imports(module: str) -> dict[str, Any]:
    """Names a module imports inside its functions (the CLI imports where a command runs)."""
    path = REPO / Path(*module.split(".")).with_suffix(".py")
    found: dict[str, Any] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            source = importlib.import_module(node.module)
            for alias in node.names:
                if alias.name == "*":
                    continue
                name = alias.asname or alias.name
                found[name] = getattr(source, alias.name, None) or importlib.import_module(
                    f"{node.module}.{alias.name}"
                )
    return found


def _resolve(call: Call, expr: ast.expr | None = None) -> Any:
    """The object an argument names, evaluated in its module (names and dotted attributes)."""
    namespace = {**_local_imports(call.module), **vars(importlib.import_module(call.module))}
    code = compile(ast.Expression(expr or call.target), call.where, "eval")
    return eval(code, namespace)  # our own source: names and attributes only


def _owner(call: Call) -> type[Any]:
    assert isinstance(call.target, ast.Attribute), f"{call.where}: not a method reference"
    owner = _resolve(call, call.target.value)
    assert isinstance(owner, type), f"{call.where}: {ast.unparse(call.target)} is not a method"
    return owner


# The SDK keeps definitions on private attributes; these are the names it registers under.
def _activity_name(fn: Any) -> str | None:
    definition = activity._Definition.from_callable(fn)
    return definition.name if definition else None


def _definition(cls: type[Any]) -> Any:
    return workflow._Definition.must_from_class(cls)


def _handler_name(fn: Any, kind: str) -> str | None:
    definition = getattr(fn, f"__temporal_{kind}_definition", None)
    return definition.name if definition else None


async def _registered_activities(store: Store, settings: Settings) -> set[str]:
    deps = WorkerDeps(store=store, settings=settings)
    names = {_activity_name(fn) for fn in deps.activities()}
    if deps.http is not None:
        await deps.http.aclose()
    assert None not in names, "the worker registers something that is not an activity"
    return {name for name in names if name}


ACTIVITY_USES = list(_calls(WORKFLOW_SOURCES, ACTIVITY_CALLS))
HANDLER_USES = list(_calls([*WORKFLOW_SOURCES, *CLIENT_SOURCES], HANDLER_CALLS))
WORKFLOW_USES = list(_calls([*WORKFLOW_SOURCES, *CLIENT_SOURCES], WORKFLOW_CALLS))


def test_the_sources_are_scanned() -> None:
    assert len(ACTIVITY_USES) >= 8 and len(HANDLER_USES) >= 10 and len(WORKFLOW_USES) >= 6


@pytest.mark.parametrize("call", ACTIVITY_USES, ids=[c.where for c in ACTIVITY_USES])
async def test_every_activity_a_workflow_calls_is_registered_by_the_worker(
    call: Call, store: Store, settings: Settings
) -> None:
    assert call.verb.endswith("_method"), f"{call.where}: call activities by method reference"
    name = _activity_name(_resolve(call))
    assert name is not None, f"{call.where}: {ast.unparse(call.target)} is not an activity"
    assert name in await _registered_activities(store, settings), (
        f"{call.where}: activity {name!r} is not registered by worker.WorkerDeps.activities()"
    )


async def test_every_registered_activity_is_called_by_a_workflow(
    store: Store, settings: Settings
) -> None:
    called = {_activity_name(_resolve(call)) for call in ACTIVITY_USES}
    assert await _registered_activities(store, settings) <= called


@pytest.mark.parametrize("call", HANDLER_USES, ids=[c.where for c in HANDLER_USES])
def test_every_signal_and_query_sent_is_a_handler_of_a_registered_workflow(call: Call) -> None:
    assert not isinstance(call.target, ast.Constant), f"{call.where}: a name, not a handler"
    owner, fn = _owner(call), _resolve(call)
    name = _handler_name(fn, call.verb)
    assert name is not None, f"{call.where}: {ast.unparse(call.target)} is not a {call.verb}"
    handlers = [
        getattr(_definition(w), HANDLER_CALLS[call.verb]) for w in WORKFLOWS if issubclass(w, owner)
    ]
    assert any(name in found for found in handlers), (
        f"{call.where}: no registered workflow handles {call.verb} {name!r}"
    )


@pytest.mark.parametrize("call", WORKFLOW_USES, ids=[c.where for c in WORKFLOW_USES])
def test_every_workflow_started_or_addressed_is_registered(call: Call) -> None:
    assert not isinstance(call.target, ast.Constant), f"{call.where}: a name, not a run method"
    owner = _owner(call)
    assert owner in WORKFLOWS, f"{call.where}: {owner.__name__} is not registered by the worker"
    assert _resolve(call) is _definition(owner).run_fn
    for keyword in call.node.keywords:
        if keyword.arg == "start_signal":
            signal = _resolve(call, keyword.value)
            assert signal in _definition(owner).signals, (
                f"{call.where}: {owner.__name__} has no signal {signal!r}"
            )
