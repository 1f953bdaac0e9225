"""The policy rulebook: which journeys a contact enters or leaves, and what a send may do.

Every rule of the decision graph is written here, against the facts of ``rules.facts``, and
added to a ``rules.adapter.Ruleset``; nothing here touches the engine itself. Rules are grouped
by the policy they enforce:

- suppression: consent, deliverability, competitors, sales activity, suppression lists, an
  open opportunity and customers block marketing (or everything) and veto the journeys they
  concern; a hold list pauses every running journey;
- triggers: one rule per journey (latest version) turns a matching occurrence into a
  ``triggered`` fact, and one more turns a request to enroll in it (an ``enroll`` step, a
  recycle) into one; hand-raisers are routed to sales now and nurture steps aside;
- re-enrollment: already in it, entry criteria, exit already met, ``once``, ``once_per_days``;
- throttling: a send meets blocks, the frequency cap and quiet hours (in the contact's zone);
- resuming: a paused journey nothing holds any more (what pre-empted it ended, sales is done
  with a hand-raiser, the hold list was left) resumes;
- exclusivity and priority (the second stratum): survivors meet each other and the running
  journeys of their group, deriving who is outranked, held off, or pre-empted.

Every rule is positive (none waits for the absence of a fact), so a decision does not depend
on the order facts arrive in. ``rules.verdict`` turns what the rules derived into actions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from audience.conditions import operand_forms
from journeys.enrollment import EventTrigger, ListTrigger, OncePerDays
from models.decisions import ENROLL_REQUEST_EVENT
from rules.adapter import Derive, Fact, Ruleset, Session, any_of, c, cross, either, fact, m
from rules.catalog import Catalog, CompiledJourney, field_key
from rules.facts import DAY_SECONDS, Observation, triggered_fact
from rules.policies import Policies

__all__ = ["add_rules"]

_Session = Session[Observation]


def add_rules(rules: Ruleset[Observation], catalog: Catalog, policies: Policies) -> None:
    """Add the whole decision graph for these journeys and policies to ``rules``."""
    _Rulebook(rules, catalog, policies).write()


def _veto_fact(journey: str, code: str, kind: str, reason: str) -> Fact:
    """A triggered journey may not start: ``kind`` is 'refuse' or 'suppress'."""
    return fact("veto", f"{journey}:{code}", journey=journey, kind=kind, reason=reason)


def _send() -> Any:
    """A fresh 'the occurrence is a send request' pattern (aliasing mutates patterns)."""
    return (m.t == "occurrence") & (m.kind == "send")


def _marketing_send() -> Any:
    """A fresh 'the occurrence is a marketing send' pattern."""
    return _send() & (m.marketing == True)  # noqa: E712


def _signal(name: str) -> Any:
    """A fresh 'the contact raised signal ``name``' pattern (route_now, customer ...)."""
    return (m.t == "signal") & (m.name == name)


def _per_days_reason(days: float) -> Callable[[Fact], str]:
    """The refusal text of a 'once per N days' journey entered too recently."""

    def reason(j: Fact) -> str:
        return (
            f"entered {j['days_since_last']:.1f} days ago; re-enrollment is once per {days:g} days"
        )

    return reason


def _days(seconds: float) -> str:
    """Days for reasons: '3.5 days', '1 day'."""
    days = round(seconds / DAY_SECONDS, 1)
    return f"{days:g} day" + ("" if days == 1 else "s")


class _Rulebook:
    """Writes the rules; each group of rules is one method."""

    def __init__(self, rules: Ruleset[Observation], catalog: Catalog, policies: Policies) -> None:
        """The ruleset to add to and what the rules are compiled from."""
        self._rules = rules
        self._catalog = catalog
        self._policies = policies

    def _rule(self, name: str, *patterns: Any, derive: Derive[Observation]) -> None:
        """Add one rule: ``patterns`` are aliased, ``derive`` is its action."""
        self._rules.rule(name, *patterns, derive=derive)

    def write(self) -> None:
        """The whole rule graph, in a fixed order (rule names are part of every trace)."""
        self._contact_rules()
        self._trigger_rules()
        self._hand_raiser_rules()
        self._veto_rules()
        self._active_rules()
        self._hold_rules()
        self._send_rules()
        self._contest_rules()

    # -- contact: consent, deliverability, competitors, sales activity, lifecycle ------------

    def _block(self, name: str, test: Any, code: str, scope: str, reason: str) -> None:
        """A contact-level block: no marketing (scope 'marketing') or nothing ('all')."""

        def derive(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            return [fact("block", code, scope=scope, code=code, reason=reason)]

        self._rule(name, c.k << ((m.t == "contact") & test), derive=derive)

    def _contact_rules(self) -> None:
        """Consent, deliverability and competitor blocks, then the chained signals."""
        s = self._policies.suppression
        blocks = [
            (s.honour_unsubscribe, "unsubscribed", True, "unsubscribed", "unsubscribed"),
            (s.require_subscription, "subscribed", False, "not_subscribed", "not subscribed"),
            (s.require_gdpr_consent, "gdpr_refused", True, "gdpr", "no GDPR consent"),
            (s.ccpa_opt_out_blocks_marketing, "ccpa_opt_out", True, "ccpa", "CCPA opt-out"),
            (s.hard_bounce, "hard_bounced", True, "hard_bounce", "address hard-bounced"),
            (s.spam_complaint, "spam_complaint", True, "spam", "spam complaint"),
        ]
        for enabled, flag, wanted, code, reason in blocks:
            if enabled:
                test = getattr(m, flag) == wanted
                self._block(f"consent.{code}", test, code, "marketing", reason)
        if s.competitors:
            test = m.competitor == True  # noqa: E712
            self._block("contact.competitor", test, "competitor", "all", "contact is a competitor")
        self._sales_rules()
        self._customer_rules()
        self._list_rules()
        if s.open_opportunity:
            test = m.opportunity_open == True  # noqa: E712
            why = "an opportunity is open: no automated marketing until it is won or lost"
            self._block("lifecycle.open_opportunity", test, "opportunity", "marketing", why)

    def _list_block(self, name: str, field: str, code: str, scope: str, words: str) -> None:
        """A block naming the lists (suppression or hold) the contact is on."""

        def derive(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            reason = f"{words} {seen['k'][field]}"
            return [fact("block", code, scope=scope, code=code, reason=reason)]

        self._rule(name, c.k << ((m.t == "contact") & (getattr(m, field) != "")), derive=derive)

    def _list_rules(self) -> None:
        """Suppression lists block marketing (everything, if the policy says so); hold lists
        block every journey and every send."""
        scope = "every" if self._policies.suppression.lists_block_transactional else "marketing"
        self._list_block(
            "lists.suppression",
            "suppression_lists",
            "suppression_list",
            scope,
            "on suppression list",
        )
        if self._policies.hold.lists:
            self._list_block(
                "lists.hold", "hold_lists", "hold", "every", "all automation held: on list"
            )

    def _sales_rules(self) -> None:
        """sales activity -> sales_active -> block marketing (two chained steps)."""
        limit = self._policies.suppression.sales_activity_days
        if limit <= 0:
            return

        def active(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            ago = seen["k"]["sales_days_ago"]
            return [fact("signal", "sales_active", name="sales_active", days_ago=ago)]

        def suppress(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            ago = float(seen["s"]["days_ago"]) * DAY_SECONDS
            reason = (
                f"sales is working this contact (activity {_days(ago)} ago; {limit:g}-day hold)"
            )
            return [fact("block", "sales_active", scope="marketing", code="sales", reason=reason)]

        recent = (m.sales_days_ago >= 0) & (m.sales_days_ago < limit)
        self._rule("sales.recent_activity", c.k << ((m.t == "contact") & recent), derive=active)
        is_sales = _signal("sales_active")
        self._rule("sales.active_suppresses_marketing", c.s << is_sales, derive=suppress)

    def _customer_rules(self) -> None:
        """A customer stage raises the 'customer' signal (acquisition rules join on it)."""
        stages = any_of("stage", self._policies.suppression.customer_stages)
        if stages is None or not self._policies.suppression.customers_leave_acquisition:
            return

        def customer(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            return [fact("signal", "customer", name="customer", stage=seen["k"]["stage"])]

        self._rule("lifecycle.customer", c.k << ((m.t == "contact") & stages), derive=customer)

    # -- triggers -----------------------------------------------------------------------------

    def _trigger_test(self, journey: CompiledJourney) -> Any:
        """The occurrence pattern that enters ``journey``."""
        trigger = journey.spec.trigger
        assert trigger is not None, "journeys without a trigger get no trigger rule"
        occurrence = m.t == "occurrence"
        if isinstance(trigger, EventTrigger):
            test = occurrence & (m.kind == "event") & (m.name == trigger.event)
            fields = self._catalog.property_fields
            for key, value in sorted(trigger.properties.items()):
                kind, forms = operand_forms(value)
                equal = [getattr(m, fields[field_key(key, kind, f)]) == f for f in forms]
                test = test & either(*equal)
            return test
        if isinstance(trigger, ListTrigger):
            return occurrence & (m.kind == "list_entered") & (m.list == trigger.list)
        return occurrence & (m.kind == "stage_entered") & (m.stage == trigger.stage)

    def _trigger_rules(self) -> None:
        """One rule per journey (latest version): occurrence matches -> 'triggered' fact; and
        one for a request to enroll in it by name (a journey without a trigger has only that)."""
        for name in sorted(self._catalog.latest):
            journey = self._catalog.latest[name]
            if journey.spec.trigger is not None:
                self._rule(
                    f"trigger.{name}",
                    c.o << self._trigger_test(journey),
                    derive=self._triggered(journey),
                )
            requested = (
                (m.t == "occurrence")
                & (m.kind == "event")
                & (m.name == ENROLL_REQUEST_EVENT)
                & (m.requested == name)
            )
            self._rule(f"request.{name}", c.o << requested, derive=self._triggered(journey))

    @staticmethod
    def _triggered(journey: CompiledJourney) -> Derive[Observation]:
        """The action of a trigger rule: look at the contact's history for this journey."""

        def derive(session: _Session, seen: dict[str, Fact]) -> list[Fact]:
            return [triggered_fact(session.context, journey)]

        return derive

    # -- hand-raisers: hand_raiser -> route_now -> nurture steps aside -------------------------

    def _hand_raiser_rules(self) -> None:
        """Hand-raiser events route to sales now; categories listed in the policy step aside."""
        policy = self._policies.hand_raiser
        names = any_of("name", policy.events or [])
        if names is None:
            return

        def raised(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            event = seen["o"]["name"]
            return [fact("signal", "hand_raiser", name="hand_raiser", event=event)]

        def route(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            event = seen["h"]["event"]
            return [fact("signal", "route_now", name="route_now", event=event)]

        event = (m.t == "occurrence") & (m.kind == "event") & names
        self._rule("hand_raiser.detected", c.o << event, derive=raised)
        is_raiser = c.h << _signal("hand_raiser")
        if self._policies.suppression.competitors:
            # Competitors raising a hand are not routed to sales (they get nothing but
            # transactional messages); everyone else is.
            not_competitor = c.k << ((m.t == "contact") & (m.competitor == False))  # noqa: E712
            self._rule("hand_raiser.route_now", is_raiser, not_competitor, derive=route)
        else:
            self._rule("hand_raiser.route_now", is_raiser, derive=route)
        self._step_aside_rules()

    def _step_aside_rules(self) -> None:
        """route_now keeps nurture (by default) from starting and pauses it if running."""
        policy = self._policies.hand_raiser
        categories = any_of("category", policy.suppress_categories)
        if categories is None:
            return
        route_now = c.r << _signal("route_now")

        def suppress(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j, why = seen["j"]["journey"], f"hand-raiser ({seen['r']['event']}) routed to sales now"
            return [_veto_fact(j, "route_now", "suppress", why)]

        def step_aside(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j, why = seen["a"]["journey"], f"hand-raiser ({seen['r']['event']}) routed to sales now"
            return [
                fact(
                    policy.active_action, f"{j}:route_now", journey=j, reason=why, by="hand-raiser"
                )
            ]

        candidate = c.j << ((m.t == "triggered") & categories)
        self._rule("hand_raiser.suppresses_category", route_now, candidate, derive=suppress)
        running = c.a << ((m.t == "active") & (m.paused == False) & categories)  # noqa: E712
        self._rule("hand_raiser.steps_aside", route_now, running, derive=step_aside)

    # -- vetoes on triggered journeys -------------------------------------------------------

    def _veto(
        self, name: str, test: Any, code: str, kind: str, reason: Callable[[Fact], str]
    ) -> None:
        """A rule vetoing a triggered journey on its own fields."""

        def derive(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j = seen["j"]
            return [_veto_fact(j["journey"], code, kind, reason(j))]

        self._rule(name, c.j << ((m.t == "triggered") & test), derive=derive)

    def _veto_rules(self) -> None:
        """Why a triggered journey may not start: state, criteria, history, policy blocks."""
        self._veto(
            "enrollment.already_in",
            m.active == True,  # noqa: E712
            "already_in",
            "refuse",
            lambda j: f"already in it (version {j['active_version']})",
        )
        self._veto(
            "enrollment.entry_criteria",
            m.entry_ok == False,  # noqa: E712
            "entry",
            "refuse",
            lambda j: "entry criteria not met",
        )
        self._veto(
            "enrollment.exit_already_met",
            m.exit_met == True,  # noqa: E712
            "exit_met",
            "refuse",
            lambda j: "its exit criteria are already met",
        )
        self._veto(
            "reenrollment.once",
            (m.reenrollment == "once") & (m.past_entries > 0),
            "once",
            "refuse",
            lambda j: "entered before and re-enrollment is once only",
        )
        self._per_days_rules()
        self._block_vetoes()

    def _per_days_rules(self) -> None:
        """One rule per 'once per N days' journey: entered less than N days ago -> refuse."""
        for name in sorted(self._catalog.latest):
            policy = self._catalog.latest[name].spec.reenrollment
            if not isinstance(policy, OncePerDays):
                continue
            days = policy.once_per_days
            self._veto(
                f"reenrollment.once_per_days.{name}",
                (m.journey == name) & (m.days_since_last >= 0) & (m.days_since_last < days),
                "per_days",
                "refuse",
                _per_days_reason(days),
            )

    def _block_vetoes(self) -> None:
        """Contact blocks suppress journeys: marketing blocks marketing ones, 'all' blocks any."""

        def suppress(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j, b = seen["j"]["journey"], seen["b"]
            return [_veto_fact(j, b["code"], "suppress", b["reason"])]

        block = (m.t == "block") & (m.scope == "marketing")
        marketing = (m.t == "triggered") & (m.marketing == True)  # noqa: E712
        self._rule("suppression.marketing_journey", c.j << marketing, c.b << block, derive=suppress)
        everything = (m.t == "block") & ((m.scope == "all") | (m.scope == "every"))
        self._rule(
            "suppression.any_journey",
            c.j << (m.t == "triggered"),
            c.b << everything,
            derive=suppress,
        )

        def customer(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j, stage = seen["j"]["journey"], seen["s"]["stage"]
            why = f"customers ({stage}) are not enrolled in acquisition journeys"
            return [_veto_fact(j, "customer", "refuse", why)]

        acquisition = (m.t == "triggered") & (m.acquisition == True)  # noqa: E712
        skips = "lifecycle.customer_skips_acquisition"
        self._rule(skips, c.j << acquisition, c.s << _signal("customer"), derive=customer)

    # -- running journeys ----------------------------------------------------------------------

    def _active_rules(self) -> None:
        """Running journeys leave when their exit criteria hold or the contact became a customer."""

        def criteria(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j = seen["a"]["journey"]
            return [fact("exit", f"{j}:criteria", journey=j, reason="exit criteria met")]

        met = (m.t == "active") & (m.exit_met == True)  # noqa: E712
        self._rule("exit.criteria_met", c.a << met, derive=criteria)

        def customer(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j, stage = seen["a"]["journey"], seen["s"]["stage"]
            why = f"customers ({stage}) leave acquisition journeys"
            return [fact("exit", f"{j}:customer", journey=j, reason=why)]

        acquisition = (m.t == "active") & (m.acquisition == True)  # noqa: E712
        leaves = "lifecycle.customer_leaves_acquisition"
        self._rule(leaves, c.a << acquisition, c.s << _signal("customer"), derive=customer)

    # -- holds and resuming ---------------------------------------------------------------------

    def _hold_rules(self) -> None:
        """A hold pauses every running journey; a paused journey nothing holds resumes."""

        def hold(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j, why = seen["a"]["journey"], seen["k"]["hold_lists"]
            reason = f"all automation held: on list {why}"
            return [fact("pause", f"{j}:hold", journey=j, reason=reason, by="hold")]

        if self._policies.hold.lists:
            on_hold = c.k << ((m.t == "contact") & (m.on_hold == True))  # noqa: E712
            running = c.a << ((m.t == "active") & (m.paused == False))  # noqa: E712
            self._rule("hold.pauses_running", on_hold, running, derive=hold)

        def resume(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            j = seen["a"]["journey"]
            why = "nothing holds it any more (what paused it has ended)"
            return [fact("resume", j, journey=j, reason=why)]

        free = (m.t == "active") & (m.paused == True) & (m.held == False)  # noqa: E712
        not_held = c.k << ((m.t == "contact") & (m.on_hold == False))  # noqa: E712
        self._rule("resume.when_free", c.a << free, not_held, derive=resume)

    # -- sends: suppression, frequency cap, quiet hours -----------------------------------------

    def _send_rules(self) -> None:
        """A send request: marketing sends meet blocks and the cap; sends meet quiet hours.

        Whether a send is marketing (a marketing journey, not transactional) is observed in
        Python and carried on the occurrence, which saves one action per send.
        """
        self._send_block_rules()
        self._cap_rule()
        self._quiet_rule()

    def _send_block_rules(self) -> None:
        """Blocks and a journey that is leaving or stepping aside suppress the send."""

        def blocked(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            b = seen["b"]
            return [fact("send_block", b["code"], reason=b["reason"])]

        def leaving(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            x = seen["x"]
            why = f"{x['journey']} is {'left' if x['t'] == 'exit' else 'paused'}: {x['reason']}"
            return [fact("send_block", "journey", reason=why)]

        marketing_block = c.b << ((m.t == "block") & (m.scope == "marketing"))
        self._rule("send.suppressed", c.o << _marketing_send(), marketing_block, derive=blocked)
        any_block = c.b << ((m.t == "block") & (m.scope == "all"))
        non_transactional = c.o << (_send() & (m.transactional == False))  # noqa: E712
        self._rule("send.suppressed_any", non_transactional, any_block, derive=blocked)
        every_block = c.b << ((m.t == "block") & (m.scope == "every"))
        self._rule("send.suppressed_every", c.o << _send(), every_block, derive=blocked)
        for kind in ("exit", "pause"):
            stop = c.x << cross((m.t == kind) & (m.journey == c.o.journey), "o")
            self._rule(f"send.journey_{kind}", c.o << _send(), stop, derive=leaving)

    def _cap_rule(self) -> None:
        """Over the frequency cap -> defer (the exact time is computed when assembling)."""
        cap = self._policies.frequency_cap
        channels = any_of("channel", cap.channels)
        if not cap.enabled or channels is None:
            return

        def defer(session: _Session, seen: dict[str, Fact]) -> list[Fact]:
            request = session.context.request
            release = cap.release_at(request.now, request.recent_marketing_sends)
            why = (
                f"frequency cap: {seen['o']['sends_in_window']} marketing sends in the last "
                f"{cap.window_days:g} days (max {cap.max_sends}); the oldest leaves the window "
                f"at {release:%Y-%m-%d %H:%M} UTC"
            )
            return [fact("defer", "cap", cause="cap", reason=why)]

        over = _marketing_send() & channels & (m.sends_in_window >= cap.max_sends)
        self._rule("send.frequency_cap", c.o << over, derive=defer)

    def _quiet_rule(self) -> None:
        """Inside quiet hours in the contact's zone -> defer to the next allowed minute."""
        quiet = self._policies.quiet_hours
        channels = any_of("channel", quiet.channels)
        if not quiet.enabled or channels is None:
            return
        start = quiet.start.hour * 60 + quiet.start.minute
        end = quiet.end.hour * 60 + quiet.end.minute
        if start < end:
            inside = (m.local_minute >= start) & (m.local_minute < end)
        else:
            inside = (m.local_minute >= start) | (m.local_minute < end)
        test = _send() & channels & inside
        if quiet.transactional_exempt:
            test = test & (m.transactional == False)  # noqa: E712

        def defer(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            o = seen["o"]
            why = (
                f"quiet hours {quiet.start:%H:%M}-{quiet.end:%H:%M} in {o['time_zone']} "
                f"(local time {o['local_time']})"
            )
            return [fact("defer", "quiet", cause="quiet", reason=why)]

        self._rule("send.quiet_hours", c.o << test, derive=defer)

    # -- stratum 2: exclusivity and priority ----------------------------------------------------

    def _contest_rules(self) -> None:
        """Survivors meet each other and the running journeys of their group."""

        def outranked(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            x, y = seen["x"], seen["y"]
            why = f"{y['journey']} wins (priority {y['priority']} > {x['priority']})"
            return [_veto_fact(x["journey"], "outranked", "refuse", why)]

        def held(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            x, a = seen["x"], seen["a"]
            sign = ">" if a["priority"] > x["priority"] else "="
            why = f"in {a['journey']} (priority {a['priority']} {sign} {x['priority']})"
            return [_veto_fact(x["journey"], "held", "refuse", why)]

        def preempts(_: _Session, seen: dict[str, Fact]) -> list[Fact]:
            x, a = seen["x"], seen["a"]
            why = f"pre-empted by {x['journey']} (priority {x['priority']} > {a['priority']})"
            key = f"{a['journey']}:{x['journey']}"
            return [fact("preempt", key, journey=a["journey"], by=x["journey"], reason=why)]

        def rival(kind: str) -> Any:
            return (m.t == kind) & (m.group == c.x.group)

        higher = c.y << cross(rival("survivor") & (m.priority > c.x.priority), "x")
        self._rule("priority.outranked", c.x << (m.t == "survivor"), higher, derive=outranked)
        holding = c.a << cross(rival("staying") & (m.priority >= c.x.priority), "x")
        self._rule("priority.held_by_running", c.x << (m.t == "survivor"), holding, derive=held)
        lower = c.a << cross(rival("staying") & (m.priority < c.x.priority), "x")
        self._rule("priority.preempts", c.x << (m.t == "survivor"), lower, derive=preempts)
