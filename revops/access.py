"""Who may validate, deploy and roll back which kind of definition (governance, seed 000).

Operators and roles come from settings: ``REVOPS_OPERATORS`` maps an operator (the OS user
running ``revops``, as the change log records it) to role names, ``REVOPS_ROLES`` maps a role
to the kinds each action is allowed on (``"*"``: every kind). ``admin`` is built in and may do
everything. With no operators configured nobody is checked (a developer's machine); once any
are, an operator not listed, or without a role allowing the action on the kind, is refused.
Pure: the CLI asks, logs a refusal and exits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

__all__ = ["ACTIONS", "ADMIN", "Action", "refusal"]

Action = Literal["validate", "deploy", "rollback"]
ACTIONS: tuple[Action, ...] = ("validate", "deploy", "rollback")
ADMIN = "admin"
"""The built-in role allowed every action on every kind."""


def refusal(
    operators: Mapping[str, Sequence[str]],
    roles: Mapping[str, Mapping[str, Sequence[str]]],
    operator: str,
    action: Action,
    kind: str,
) -> str | None:
    """Why ``operator`` may not ``action`` a ``kind`` definition, or None when they may."""
    if not operators:
        return None
    held = list(operators.get(operator, ()))
    if not held:
        return f"{operator} is not an operator (REVOPS_OPERATORS)"
    for role in held:
        if role == ADMIN:
            return None
        kinds = roles.get(role, {}).get(action, ())
        if "*" in kinds or kind in kinds:
            return None
    return f"{operator} (roles: {', '.join(held)}) may not {action} {kind} definitions"
