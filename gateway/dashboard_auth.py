"""Who may look at the dashboard: operator-configured users, hashed passwords, signed sessions.

Users live in settings (``REVOPS_DASHBOARD_USERS``: a JSON object of user name to password
hash); there is no sign-up and no user table. A hash is scrypt's (``hash_password``, also
``revops dashboard hash-password``), so the settings never hold a password. A signed-in user
gets a cookie carrying their name and an expiry, with an HMAC keyed by the id secret *and*
their password hash: changing a user's password (or removing the user) ends their sessions.
An unknown user costs the same scrypt time as a wrong password, so names cannot be probed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time

from revops.settings import Settings

__all__ = [
    "COOKIE",
    "check_password",
    "hash_password",
    "session_cookie",
    "session_user",
    "valid_user_name",
]

COOKIE = "revops_dashboard"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def valid_user_name(name: str) -> bool:
    """Letters, digits and ``._@-``, at most 64."""
    return bool(_NAME.fullmatch(name))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` for ``password`` (a fresh salt unless one is given)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${_b64(salt)}${_b64(digest)}"


def _matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        found = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
        return hmac.compare_digest(found, _unb64(digest))
    except (ValueError, TypeError):
        return False


def check_password(settings: Settings, user: str, password: str) -> bool:
    """True when ``user`` is configured and ``password`` is theirs."""
    stored = settings.dashboard_users.get(user)
    if stored is None:
        _matches(password, _DUMMY)  # same work as a real check
        return False
    return _matches(password, stored.get_secret_value())


def _mac(settings: Settings, user: str, expires: int) -> str:
    stored = settings.dashboard_users.get(user)
    if stored is None:
        return ""
    key = settings.id_secret.get_secret_value() + "\0" + stored.get_secret_value()
    message = f"dashboard|{user}|{expires}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def session_cookie(settings: Settings, user: str, now: float | None = None) -> tuple[str, int]:
    """The cookie value for a signed-in ``user`` and its lifetime in seconds."""
    lifetime = int(settings.dashboard_session_hours * 3600)
    expires = int(now if now is not None else time.time()) + lifetime
    return f"{_b64(user.encode())}.{expires}.{_mac(settings, user, expires)}", lifetime


def session_user(settings: Settings, cookie: str | None, now: float | None = None) -> str | None:
    """The user a cookie belongs to, or None (missing, forged, expired, user removed)."""
    if not cookie or cookie.count(".") != 2:
        return None
    name, expires, mac = cookie.split(".")
    try:
        user, until = _unb64(name).decode(), int(expires)
    except (ValueError, UnicodeDecodeError):
        return None
    if until < (now if now is not None else time.time()):
        return None
    expected = _mac(settings, user, until)
    if not expected or not hmac.compare_digest(expected, mac):
        return None
    return user
