"""Which behaviours added since release 1.0.0 a contact runs with.

Each is switched on by a ``workflow.patched`` id in the contact workflow (histories of 1.0.0
replay with all of them off, exactly as 1.0.0 ran). The pure transitions of ``contacts`` take
a ``Behaviour`` instead of asking Temporal, so they stay testable without it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RELEASED", "Behaviour"]


@dataclass(frozen=True)
class Behaviour:
    """Behaviours beyond 1.0.0 (all off: the 1.0.0 behaviour)."""

    recycle_policy: bool = False
    """Recycles follow the recycle definition (delay and destination per cause and reason)."""
    open_opportunity: bool = False
    """The contact keeps the ``opportunity_open`` trait the rules hold marketing back on."""
    resume_paused: bool = False
    """A paused journey is re-decided when what paused it may have ended, and resumed."""
    inform_first: bool = False
    """Running journeys hear a step's events before the rules stop or pause them, so a goal
    met by the same event counts (a trial that converts ends as a conversion)."""
    sql_qualifies: bool = False
    """Entering SQL by any other way than the sales webhook's qualification (an operator's
    ``set-stage``, a lifecycle rule) tells the running handoff the lead is qualified, so an
    Account Executive takes over as after ``lead_qualified``."""
    accounts: bool = False
    """The contact belongs to an account (group call or email domain), tells the account's
    workflow its facts and hears the account's facts back (docs/accounts.md)."""


RELEASED = Behaviour()
"""Release 1.0.0: none of the later behaviours."""
