"""Activities of the journey workflow: the send-time rules check and the journey records.

Before every send a journey asks the rules module again (``check_send``), because a lot can
change during a 20-day journey: an unsubscribe, a bounce, sales outreach, other journeys'
sends filling the weekly cap, quiet hours at the contact's local time, a suppression or hold
list. The request is built from the journey's latest facts and consent plus what only the
store knows now (the stored consent, which the one-click unsubscribe updates at once; list
memberships, which ``revops lists add`` changes; hard bounces and complaints; sales
outreach; the send ledger). The decision is kept with its trace in the decision log, so
``revops contacts why`` can say why an email did or did not go.

Durable_rules runs here, never in workflow code. The engine compiled for one journey version
and the current policies is cached by the rules module.
"""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from audience.consent import Consent
from definitions import LISTS, POLICIES, Definitions
from journeys.contract import CheckSendInput, CheckSendResult, JourneyRecord
from models.decisions import (
    ActiveEnrollment,
    ConsentFacts,
    Decision,
    DecisionRequest,
    SendRequested,
    explain_decision,
)
from revops.errors import ConfigError
from rules import compile_rules
from rules.policies import Policies
from store.decisions import DecisionLog
from store.effects import Ledger
from store.history import History
from store.journeys import JourneyLog, summarise
from store.repo import Store

__all__ = ["JourneyActivities"]


class JourneyActivities:
    """Send-time checks and journey records; dependencies are given at construction."""

    def __init__(self, store: Store, definitions: Definitions) -> None:
        self._store = store
        self._definitions = definitions
        self._ledger = Ledger(store)
        self._log = JourneyLog(store)
        self._decisions = DecisionLog(store)
        self._history = History(store)

    def _policies(self) -> Policies:
        """Deployed policies, else ``config/policies.yaml`` (cached until they change)."""
        return self._definitions.get(POLICIES)

    @activity.defn(name="check_send")
    def check_send(self, data: CheckSendInput) -> CheckSendResult:
        """Allow, defer (until when) or suppress one send, as the rules decide now."""
        try:
            policies = self._policies()
            engine = compile_rules([data.journey], policies)
        except ConfigError as exc:
            # A definition error does not heal by retrying: the journey records it and goes on.
            raise ApplicationError(str(exc), type="ConfigError", non_retryable=True) from exc
        decision = engine.decide(self._request(data, policies))
        self._decisions.record(decision, explain_decision(decision))
        return _verdict(decision)

    def _request(self, data: CheckSendInput, policies: Policies) -> DecisionRequest:
        lists = data.facts.lists | self._history.lists_of(data.contact_id)
        facts = data.facts.model_copy(update={"lists": lists})
        suppression = self._definitions.get(LISTS).suppression
        seen = (
            summarise((e.name, e.properties, e.at) for e in facts.events),
            self._log.deliverability(data.contact_id),
        )
        journey = data.journey
        priority = journey.priority
        if priority is None:
            priority = policies.priorities.get(journey.category or "", 0)
        last_sales = [m for m in (s.last_sales_activity_at for s in seen) if m is not None]
        return DecisionRequest(
            contact=facts,
            time_zone=data.time_zone,
            consent=self._consent(data.contact_id, data.consent),
            hard_bounced=any(s.hard_bounced for s in seen),
            spam_complaint=any(s.spam_complaint for s in seen),
            is_competitor="Competitors" in facts.lists,
            active_enrollments=[
                ActiveEnrollment(
                    journey=journey.name,
                    version=journey.version,
                    priority=priority,
                    exclusivity_group=journey.exclusivity_group,
                    enrolled_at=data.enrolled_at,
                )
            ],
            last_sales_activity_at=max(last_sales) if last_sales else None,
            recent_marketing_sends=self._recent_sends(data, policies),
            suppression_lists=sorted(suppression & lists),
            occurrence=SendRequested(
                journey=journey.name,
                step=data.step,
                channel=data.channel,
                transactional=data.transactional,
            ),
        )

    def _consent(self, contact_id: str, latest: Consent) -> ConsentFacts:
        """The journey's latest consent, overruled by the store's when that one is stricter."""
        row = self._store.contact(contact_id)
        stored = Consent.model_validate(row.consent or {}) if row is not None else Consent()
        return ConsentFacts(
            subscribed=latest.subscribed and stored.subscribed,
            unsubscribed=latest.unsubscribed_at is not None or stored.unsubscribed_at is not None,
            gdpr_consent=False
            if False in (latest.gdpr_consent, stored.gdpr_consent)
            else latest.gdpr_consent,
            ccpa_opt_out=latest.ccpa_opt_out or stored.ccpa_opt_out,
        )

    def _recent_sends(self, data: CheckSendInput, policies: Policies) -> list[datetime]:
        """Marketing emails sent to the contact in the cap window, across all journeys.

        This enrollment's own sends count at the workflow time they were made (the same as
        the wall clock in production; under simulated time only the workflow knows it).
        """
        since = data.facts.now - policies.frequency_cap.window
        moments: list[datetime] = []
        for row in self._ledger.sends(data.contact_id):
            if not (row.marketing and row.channel == "email" and row.status == "sent"):
                continue
            at = data.own_sends.get(row.key) or row.sent_at
            if at is not None:
                at = at if at.tzinfo else at.replace(tzinfo=UTC)
                if at >= since:
                    moments.append(at)
        return sorted(moments)

    @activity.defn(name="record_journey")
    def record_journey(self, record: JourneyRecord) -> None:
        """Keep a split assignment, a variant's first send, or a goal conversion (idempotent)."""
        if record.kind == "assigned":
            if record.variant is None:
                raise ConfigError("an assignment needs a variant")
            self._log.assigned(
                record.enrollment_id,
                record.contact_id,
                record.journey,
                record.version,
                record.step,
                record.variant,
                record.at,
            )
        elif record.kind == "variant_sent":
            self._log.variant_sent(record.enrollment_id, record.step, record.at)
        else:
            self._log.converted(
                record.enrollment_id,
                record.contact_id,
                record.journey,
                record.version,
                record.step,
                record.at,
            )


def _verdict(decision: Decision) -> CheckSendResult:
    """The send action of a decision as a verdict (no send action means allow)."""
    for action in reversed(decision.actions):
        if action.kind == "suppress":
            return CheckSendResult(
                verdict="suppress", reason=action.reason, ruleset_version=decision.ruleset_version
            )
        if action.kind == "defer":
            return CheckSendResult(
                verdict="defer",
                until=action.until,
                reason=action.reason,
                ruleset_version=decision.ruleset_version,
            )
        if action.kind == "allow":
            return CheckSendResult(
                verdict="allow", reason=action.reason, ruleset_version=decision.ruleset_version
            )
    return CheckSendResult(verdict="allow", ruleset_version=decision.ruleset_version)
