"""The definition registry: versions, change log with diffs, rollback; SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from revops.errors import NotFound, ValidationFailed
from store.registry import Registry
from store.repo import Store


def test_deploy_creates_numbered_versions_and_logs_who_and_what(any_store: Store) -> None:
    registry = Registry(any_store)
    first = registry.deploy("scoring", "default", {"version": "a", "points": 10}, author="ana")
    second = registry.deploy("scoring", "default", {"version": "b", "points": 25}, author="bo")
    assert (first.version, second.version) == (1, 2)
    assert "-points: 10" in second.diff and "+points: 25" in second.diff
    active = registry.active("scoring", "default")
    assert active is not None and active.body["points"] == 25
    log = registry.changes("scoring")
    assert [(c.action, c.version, c.author) for c in log] == [
        ("deploy", 2, "bo"),
        ("deploy", 1, "ana"),
    ]


def test_deploying_the_same_body_again_is_a_no_op(any_store: Store) -> None:
    registry = Registry(any_store)
    registry.deploy("lists", "all", {"lists": []}, author="ana")
    again = registry.deploy("lists", "all", {"lists": []}, author="ana")
    assert again.changed is False and again.version == 1
    assert len(registry.versions("lists", "all")) == 1


def test_rollback_returns_to_the_previous_version_step_by_step(any_store: Store) -> None:
    registry = Registry(any_store)
    for points in (1, 2, 3):
        registry.deploy("scoring", "default", {"points": points}, author="ana")
    revision_before = registry.revision()
    assert registry.rollback("scoring", "default", author="bo").version == 2
    assert registry.rollback("scoring", "default", author="bo").version == 1
    active = registry.active("scoring", "default")
    assert active is not None and active.body == {"points": 1}
    assert registry.revision() > revision_before
    with pytest.raises(ValidationFailed, match="first version"):
        registry.rollback("scoring", "default", author="bo")


def test_rollback_of_an_unknown_definition_says_so(any_store: Store) -> None:
    with pytest.raises(NotFound, match="never been deployed"):
        Registry(any_store).rollback("journey", "ghost", author="ana")


def test_active_all_lists_each_name_once(any_store: Store) -> None:
    registry = Registry(any_store)
    registry.deploy("journey", "nurture", {"v": 1}, author="a")
    registry.deploy("journey", "nurture", {"v": 2}, author="a")
    registry.deploy("journey", "trial", {"v": 1}, author="a")
    active = registry.active_all("journey")
    assert [(d.name, d.version) for d in active] == [("nurture", 2), ("trial", 1)]
