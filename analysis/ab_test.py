"""A/B(/n) test reading: per-variant conversion and a winner only at statistical significance.

The test is a two-proportion z-test (pure Python, the normal tail from ``math.erfc``) of the
best variant against each other one, with a Bonferroni correction when there are more than two
variants, so "winner" means the best variant beat every other one at the chosen confidence.
Below a minimum sample per variant no winner is named, however large the difference looks:
early results of small samples swing too much to act on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ArmResult", "SplitReport", "read_split", "two_proportion_p_value"]


@dataclass(frozen=True)
class ArmResult:
    """One variant: contacts who got it (``sent``) and how many of those converted."""

    variant: str
    assigned: int
    sent: int
    converted: int

    @property
    def rate(self) -> float:
        """Conversion rate among the contacts who got the variant (0 when none did)."""
        return self.converted / self.sent if self.sent else 0.0


@dataclass(frozen=True)
class SplitReport:
    """The reading of one split step."""

    step: str
    arms: tuple[ArmResult, ...]
    winner: str | None
    p_value: float | None
    verdict: str


def two_proportion_p_value(c1: int, n1: int, c2: int, n2: int) -> float:
    """Two-sided p-value that the conversion rates c1/n1 and c2/n2 differ (pooled z-test)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (c1 + c2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return 1.0
    z = (c1 / n1 - c2 / n2) / spread
    return math.erfc(abs(z) / math.sqrt(2))


def read_split(
    step: str, arms: Sequence[ArmResult], *, confidence: float = 0.95, min_sample: int = 100
) -> SplitReport:
    """Name a winner only if the best arm beats every other at ``confidence``."""
    ordered = tuple(sorted(arms, key=lambda a: (-a.rate, a.variant)))
    if len(ordered) < 2:
        return SplitReport(step, ordered, None, None, "no winner yet: fewer than two variants")
    smallest = min(a.sent for a in ordered)
    if smallest < min_sample:
        verdict = f"no winner yet: {smallest} sends in the smallest variant (need {min_sample})"
        return SplitReport(step, ordered, None, None, verdict)
    best, others = ordered[0], ordered[1:]
    alpha = (1 - confidence) / len(others)
    p_values = [
        two_proportion_p_value(best.converted, best.sent, o.converted, o.sent) for o in others
    ]
    worst_p = max(p_values)
    if worst_p < alpha and all(best.rate > o.rate for o in others):
        verdict = f"winner {best.variant} at {confidence:.0%} confidence (p={worst_p:.4f})"
        return SplitReport(step, ordered, best.variant, worst_p, verdict)
    verdict = f"no winner yet: not significant at {confidence:.0%} (p={worst_p:.4f})"
    return SplitReport(step, ordered, None, worst_p, verdict)
