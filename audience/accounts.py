"""Which account a contact belongs to, and who it is on the buying committee.

The ``accounts`` definition (``config/accounts.yaml``): free-mail domains that never make an
account, a subsidiary mapping (``acme.de`` belongs to ``acme.com``), the engagement window and
the events that are not engagement, title patterns for the buying committee roles and for
executives, and the account play's threshold. The functions here are pure and deterministic:
the contact workflow calls them to find its account, and the CLI uses the same ones to find an
account by domain.

An account's id is a hash of its key: the company domain when one is known (the group call's
``website``/``domain`` trait, else the member's email domain), the Segment ``groupId``
otherwise. So a domain always names the same account without a lookup, and the id carries no
names. Company domains and group ids are not personal data.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from audience.facts import COMMITTEE_ROLES
from revops.strict import StrictModel

__all__ = [
    "ACCOUNT_WORKFLOW_PREFIX",
    "AccountPlay",
    "AccountsConfig",
    "Engagement",
    "account_id_for",
    "account_workflow_id",
    "company_domain",
]

ACCOUNT_WORKFLOW_PREFIX = "account-"

_FREE_MAIL = (
    *("gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com"),
    *("icloud.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de", "mail.com"),
    *("yandex.com", "web.de", "msn.com", "me.com"),
)


def company_domain(value: Any) -> str | None:
    """``https://www.Acme.com/x``, ``acme.com.`` or ``ann@acme.com`` as ``acme.com``."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().casefold().rsplit("@", 1)[-1]
    host = urlsplit(text if "//" in text else f"//{text}").hostname
    if not host:
        return None
    host = host.rstrip(".").removeprefix("www.")
    return host if "." in host else None


def account_id_for(key: str) -> str:
    """The opaque account id of a key (``domain:acme.com`` or ``group:<groupId>``)."""
    digest = hashlib.sha256(("revops-account\x1f" + key).encode()).hexdigest()
    return "a" + digest[:19]


def account_workflow_id(account_id: str) -> str:
    """Workflow id of an account's entity workflow."""
    return ACCOUNT_WORKFLOW_PREFIX + account_id


class Engagement(StrictModel):
    """What makes a member engaged: any tracked event, page or screen view, but these."""

    window_days: int = Field(default=30, ge=1, le=365)
    refresh_days: int | None = Field(default=None, ge=1, le=365)
    """Members hear that an engaged member engaged again at the latest this many days after
    the engagement they last heard of (default ``window_days - 1``: the day before it would
    leave their window). An account condition with a shorter ``within`` needs at most that
    window minus a day here."""
    ignore: tuple[str, ...] = (
        "Email Delivered",
        "Email Bounced",
        "Spam Complaint",
        "Unsubscribed",
        "Signed Up",
    )

    @model_validator(mode="after")
    def _refresh_inside_the_window(self) -> Engagement:
        """A refresh as late as the window would let members see an engaged member leave."""
        if self.refresh_days is not None and self.refresh_days >= self.window_days:
            raise ValueError("engagement.refresh_days must be less than window_days")
        return self


class AccountPlay(StrictModel):
    """The account play: when ``engaged_contacts`` members engage within the window, a joint
    alert goes to the account owner and ``marketing_owner`` (Slack and CRM tasks)."""

    engaged_contacts: int = Field(default=3, ge=1)
    marketing_owner: str = "marketing"
    default_owner: str = "sales"
    """Who gets the owner's alert when the account has no named owner."""


def _patterns(values: Any) -> Any:
    if isinstance(values, str):
        return (values,)
    return values


_DEFAULT_ROLES: dict[str, tuple[str, ...]] = {
    "economic_buyer": (r"\b(ceo|cfo|coo|chief|president|founder|owner)\b",),
    "champion": (r"\b(vp|vice president|head|director)\b",),
    "technical_evaluator": (r"\b(cto|engineer|architect|developer|devops|it)\b",),
    "user": (r"\b(manager|analyst|specialist|lead|admin)\b",),
}


class AccountsConfig(StrictModel):
    """The accounts definition (``config/accounts.yaml``); see the module docstring."""

    version: int = 1
    free_mail: tuple[str, ...] = _FREE_MAIL
    subsidiaries: dict[str, str] = Field(default_factory=dict)
    """A subsidiary's domain -> its parent's: members of both are one account."""
    engagement: Engagement = Field(default_factory=Engagement)
    committee: dict[str, tuple[str, ...]] = Field(default_factory=lambda: _DEFAULT_ROLES.copy())
    """Role -> title regexes (case-insensitive, searched), tried in the order of the roles."""
    executive: tuple[str, ...] = (r"\b(ceo|cfo|coo|cto|cio|cmo|cro|chief|president|founder)\b",)
    play: AccountPlay = Field(default_factory=AccountPlay)
    broadcast_seconds: int = Field(default=30, ge=0)
    """Members hear the account's changes at most this often (a burst of engagements is one
    broadcast, not one per engagement); the joint alert never waits."""
    history_limit: int = Field(default=2000, ge=20)
    """History length at which an account workflow continues as new."""

    @field_validator("free_mail", mode="before")
    @classmethod
    def _lower(cls, values: Any) -> Any:
        return (
            tuple(str(v).strip().casefold() for v in values) if isinstance(values, list) else values
        )

    @field_validator("subsidiaries", mode="before")
    @classmethod
    def _domains(cls, mapping: Any) -> Any:
        if not isinstance(mapping, dict):
            return mapping
        found = {}
        for child, parent in mapping.items():
            a, b = company_domain(child), company_domain(parent)
            if a is None or b is None:
                raise ValueError(f"{child!r}: {parent!r} is not a pair of domains")
            found[a] = b
        return found

    @field_validator("committee", mode="before")
    @classmethod
    def _known_roles(cls, roles: Any) -> Any:
        if not isinstance(roles, dict):
            return roles
        unknown = sorted(set(roles) - set(COMMITTEE_ROLES))
        if unknown:
            raise ValueError(f"unknown role {unknown[0]!r} (roles: {', '.join(COMMITTEE_ROLES)})")
        for patterns in roles.values():
            for pattern in _patterns(patterns):
                _compile(pattern)
        return {role: _patterns(patterns) for role, patterns in roles.items()}

    @field_validator("executive", mode="before")
    @classmethod
    def _compiles(cls, patterns: Any) -> Any:
        for pattern in _patterns(patterns) or ():
            _compile(pattern)
        return _patterns(patterns)

    @cached_property
    def _role_patterns(self) -> tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]:
        ordered = [role for role in COMMITTEE_ROLES if role in self.committee]
        return tuple(
            (role, tuple(re.compile(p, re.IGNORECASE) for p in self.committee[role]))
            for role in ordered
        )

    @cached_property
    def _executive_patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p, re.IGNORECASE) for p in self.executive)

    def canonical_domain(self, value: Any) -> str | None:
        """The company domain ``value`` names (subsidiaries resolved), None for free mail."""
        domain = company_domain(value)
        if domain is None or any(domain == f or domain.endswith("." + f) for f in self.free_mail):
            return None
        seen: set[str] = set()
        while domain in self.subsidiaries and domain not in seen:
            seen.add(domain)
            domain = self.subsidiaries[domain]
        return domain

    def role_of(self, title: Any) -> str | None:
        """The committee role a title holds (the first role whose pattern it matches)."""
        if not isinstance(title, str) or not title.strip():
            return None
        for role, patterns in self._role_patterns:
            if any(p.search(title) for p in patterns):
                return role
        return None

    def is_executive(self, title: Any) -> bool:
        """Whether a title is an executive's (C-level, president, founder)."""
        return isinstance(title, str) and any(p.search(title) for p in self._executive_patterns)

    @property
    def refresh(self) -> timedelta:
        """How stale an engaged member's heard engagement may get (``refresh_days``)."""
        days = self.engagement.refresh_days or max(1, self.engagement.window_days - 1)
        return timedelta(days=days)

    def engaging(self, kind: str, name: str) -> bool:
        """Whether an event of ``kind`` named ``name`` counts as the member engaging."""
        return kind in ("track", "page", "screen") and name not in self.engagement.ignore


def _compile(pattern: Any) -> None:
    try:
        re.compile(str(pattern))
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from exc
