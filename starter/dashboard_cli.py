"""``revops dashboard``: what an operator needs to give people access to ``/dashboard``.

Dashboard users are settings, not data: ``REVOPS_DASHBOARD_USERS`` maps each user name to a
password hash. ``hash-password`` makes that hash (scrypt, salted) and prints the setting to
add, so no password is ever written down in clear.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from gateway.dashboard_auth import hash_password, valid_user_name
from starter.common import console
from starter.output import JsonFlag, emit

__all__ = ["dashboard_app"]

dashboard_app = typer.Typer(help="The web dashboard (/dashboard): its users.", no_args_is_help=True)


@dashboard_app.command("hash-password")
def hash_password_command(
    user: Annotated[str, typer.Argument(help="The user name (letters, digits, . _ @ -).")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Hash a password for REVOPS_DASHBOARD_USERS (asks for it twice unless --password-stdin)."""
    if not valid_user_name(user):
        raise typer.BadParameter("letters, digits and . _ @ - only, at most 64", param_hint="USER")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise typer.BadParameter("use at least 8 characters", param_hint="password")
    hashed = hash_password(password)
    setting = f"REVOPS_DASHBOARD_USERS='{json.dumps({user: hashed})}'"
    view = {"user": user, "hash": hashed, "setting": setting}
    emit(view, as_json, _print)


def _print(view: dict[str, str]) -> None:
    console.print(view["hash"], highlight=False, soft_wrap=True)
    console.print(
        "Add it to the gateway's settings (several users: one JSON object), e.g. in .env:",
        highlight=False,
    )
    console.print(view["setting"], highlight=False, soft_wrap=True, markup=False)
