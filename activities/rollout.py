"""Staged rollout of a journey version, with automatic rollback on its error rate.

A version deployed with ``rollout: {percent, max_error_rate, min_sends}`` goes to ``percent``
of new enrollments, chosen by a hash of the contact (``journeys.program.in_rollout``); the
others get the version below it. Its enrollments record themselves (``journey_assignments``,
step ``rollout``), so the send ledger tells how its sends fare: a send still unsent after
``_FAILED_AFTER`` attempts is an error. Once ``min_sends`` were tried and the share of errors
is above ``max_error_rate``, the next enrollment decision rolls the journey back (registry
change log author ``auto-rollback``) and pins the previous version. Runs inside the rules
activity (I/O allowed); the workflows only see the version they are given.
"""

from __future__ import annotations

from sqlalchemy import and_, case, func, literal, select

from contacts.contract import PinnedJourney
from definitions import Definitions
from definitions.journeys import from_registry
from journeys.definition import Rollout
from journeys.program import ROLLOUT_STEP, in_rollout
from revops.logging import get_logger
from store.effects import SendRow
from store.journeys import AssignmentRow
from store.repo import Store

__all__ = ["AUTO_ROLLBACK", "Rollouts"]

AUTO_ROLLBACK = "auto-rollback"
"""The change log's author of an automatic rollback."""
_FAILED_AFTER = 3
"""A send claimed this many times and still not sent (or skipped) is failing."""

log = get_logger(__name__)


class Rollouts:
    """Pins new enrollments to a rolling-out version or the one before it."""

    def __init__(self, store: Store, definitions: Definitions) -> None:
        self._sessions = store._sessions
        self._definitions = definitions
        self._previous: dict[tuple[str, int], PinnedJourney | None] = {}

    def pin(self, pinned: PinnedJourney, contact_id: str) -> PinnedJourney:
        """The version this contact's new enrollment gets."""
        rollout = pinned.definition.rollout
        if rollout is None:
            return pinned
        previous = self._before(pinned)
        if previous is None:
            return pinned  # nothing to fall back to: everyone gets the only version
        if self._failing(pinned, rollout):
            self._roll_back(pinned)
            return previous
        if in_rollout(contact_id, pinned.name, pinned.version, rollout.percent):
            return pinned
        return previous

    def error_rate(self, journey: str, version: int) -> tuple[int, int]:
        """(sends tried, sends failing) of the enrollments on ``version`` of ``journey``."""
        a, s = AssignmentRow, SendRow
        failing = and_(s.status.not_in(("sent", "skipped")), s.attempts >= _FAILED_AFTER)
        query = (
            select(func.count(s.id), func.sum(case((failing, 1), else_=0)))
            .select_from(a)
            .join(s, s.key.like(literal("%/") + a.enrollment_id + literal("/%")))
            .where(a.journey == journey, a.step_id == ROLLOUT_STEP, a.variant == f"v{version}")
        )
        with self._sessions() as session:
            tried, failed = session.execute(query).one()
        return int(tried or 0), int(failed or 0)

    def _failing(self, pinned: PinnedJourney, rollout: Rollout) -> bool:
        tried, failed = self.error_rate(pinned.name, pinned.version)
        return tried >= rollout.min_sends and failed / tried > rollout.max_error_rate

    def _roll_back(self, pinned: PinnedJourney) -> None:
        tried, failed = self.error_rate(pinned.name, pinned.version)
        registry = self._definitions.registry
        row = registry.rollback(
            "journey", pinned.name, author=AUTO_ROLLBACK, only_from=pinned.version
        )
        log.warning(
            "journey_rollout_rolled_back",
            journey=pinned.name,
            version=pinned.version,
            to_version=row.version,
            sends=tried,
            failing=failed,
        )

    def _before(self, pinned: PinnedJourney) -> PinnedJourney | None:
        """The deployed version just below ``pinned`` (cached: versions never change)."""
        key = (pinned.name, pinned.version)
        if key not in self._previous:
            rows = self._definitions.registry.versions("journey", pinned.name)
            lower = [row for row in rows if row.version < pinned.version]
            self._previous[key] = (
                PinnedJourney(
                    name=pinned.name,
                    version=lower[-1].version,
                    definition=from_registry(lower[-1]),
                )
                if lower
                else None
            )
        return self._previous[key]
