"""JourneyWorkflow: one enrollment of one contact in one journey, step by step, durably.

It interprets the definition version pinned in its input (deploying v2 leaves a running v1
on v1) as a flat program (``journeys.program``): a position is a step id, so a 20-day
journey survives restarts, deploys and continue-as-new without losing or repeating a step.

- ``send`` asks the rules again at send time (``check_send``): allow, defer (a durable timer
  until the moment the rules name, then ask again) or suppress with the reason. Allowed sends
  go through the one send path (``send_effect``), email and SMS on their channel's paced task
  queue (patch ``engagement-paced-sends``), with the key
  ``<contact_id>/<enrollment_id>/<step id>`` (``~<n>`` appended for the n-th ask after a
  deferral): the key is in the workflow history, so retries and restarted workers reuse it
  and the send ledger turns a repeat into "duplicate".
- ``wait`` / ``wait_for`` are timers; ``branch`` and goals evaluate the one condition language
  over the latest ``ContactFacts``; ``split`` assigns a stable variant (a hash, recorded in the
  store for A/B reports); ``set`` / ``enroll`` / ``handoff`` and ``finished`` are requests to
  the parent contact workflow (recorded in progress when there is none: simulations).
- Goals are checked all along the journey (on every contact update and at every step), as is
  the definition's exit criterion; ``stop`` exits or pauses, ``resume`` resumes.
- A send whose moment passed long ago (the journey was paused, the worker was down) is stale:
  it follows its ``if_late`` policy or the journey's ``late`` default (send late, skip, or
  skip to the next step on the original schedule), so a backlog never goes out in one burst.

Deterministic code only: no I/O, no clocks but ``workflow.now()``, no randomness. Summaries
in the UI name steps and channels, never the contact (ids are opaque).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.effects import EffectActivities
    from activities.journeys import JourneyActivities
    from audience.conditions import EventCondition, evaluate
    from audience.facts import ContactFacts, EventRecord
    from journeys.contract import (
        CheckSendInput,
        CheckSendResult,
        JourneyCarry,
        JourneyContactUpdate,
        JourneyInput,
        JourneyOutcome,
        JourneyProgress,
        JourneyRecord,
        JourneyRequest,
        JourneyResult,
        JourneyStatus,
        JourneyStop,
        RecordKind,
        RequestKind,
        StepRecord,
    )
    from journeys.program import (
        HOLDOUT_STEP,
        ROLLOUT_STEP,
        Program,
        assign_variant,
        in_holdout,
        late_policy,
        step_kind,
        wait_until,
    )
    from journeys.steps import (
        BranchStep,
        CrmTaskSend,
        EmailSend,
        EnrollStep,
        ExitStep,
        GoalStep,
        HandoffStep,
        InAppSend,
        LatePolicy,
        RecycleStep,
        SendSpec,
        SendStep,
        SetStep,
        SlackSend,
        SmsSend,
        SplitStep,
        Step,
        WaitForSpec,
        WaitForStep,
        WaitStep,
    )
    from models.effects import (
        EffectRequest,
        EmailPayload,
        InAppPayload,
        SlackPayload,
        SmsPayload,
        TaskPayload,
        WebhookPayload,
        send_task_queue,
    )
    from models.search_attributes import CONTACT_ID, JOURNEY, JOURNEY_VERSION

__all__ = ["JourneyParent", "JourneyWorkflow"]

_CHECK_TIMEOUT = timedelta(seconds=30)
_RECORD_TIMEOUT = timedelta(seconds=30)
_SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
_MAX_ASKS = 20
_KEPT_EVENTS = 200

LATE_STEPS_PATCH = "lifecycle-late-steps"
"""Stale sends follow their late policy (1.0.0 sent every one of them, however late)."""
GOAL_BEFORE_STOP_PATCH = "lifecycle-goal-before-stop"
SUBJECT_TEMPLATE_PATCH = "privacy-subject-template"
"""A step's record keeps the email's subject template, never the rendered subject (which may
name the person: "Your whitepaper is ready, Dana"); docs/privacy.md."""
"""A goal met when a stop arrives ends the journey as a conversion (1.0.0: stopped)."""
ROLLOUT_PATCH = "seeds-journey-rollout"
"""An enrollment of a version in staged rollout records it, so its error rate can be measured."""
HOLDOUT_PATCH = "seeds-journey-holdout"
"""A journey with a ``holdout`` holds a share of its enrollees out: recorded, never sent to."""
LOCAL_CHECK_PATCH = "speed-local-check-send"
"""The send-time check runs as a local activity, inside the journey's workflow task: one
round trip through the server less per send (a new contact's Day-0 email; docs/performance.md)."""


class _Finish(Exception):
    """The journey ends now (goal, exit, stop)."""

    def __init__(self, outcome: JourneyOutcome, reason: str, step: str | None = None) -> None:
        super().__init__(reason)
        self.outcome: JourneyOutcome = outcome
        self.reason = reason
        self.step = step


class _Suspend(Exception):
    """History is long: continue as new at the current position."""


class JourneyParent:
    """What a journey's parent handles: the contact workflow (a stand-in in tests).

    The journey signals its parent through this handler, so the journey module does not
    import the contact workflow that starts it.
    """

    @workflow.signal(name="journey_request")
    def journey_request(self, request: JourneyRequest) -> None:
        """A step asks the parent to change the contact; ``finished`` comes last."""
        raise NotImplementedError


@workflow.defn(name="JourneyWorkflow")
class JourneyWorkflow:
    """One enrollment; see the module docstring."""

    @workflow.init
    def __init__(self, data: JourneyInput) -> None:
        self._data = data
        self._definition = data.definition
        self._program = Program.of(data.definition)
        self._facts = data.facts
        self._consent = data.consent
        carry = data.carry
        self._resume = carry
        self._cursor: str | None = carry.cursor if carry else self._program.first
        self._started_at = carry.started_at if carry else workflow.now()
        self._events: list[EventRecord] = list(carry.recent_events) if carry else []
        self._own_sends: dict[str, datetime] = dict(carry.own_sends) if carry else {}
        self._assignments: dict[str, str] = dict(carry.assignments) if carry else {}
        self._paused = carry.paused if carry else False
        self._stop: JourneyStop | None = carry.stop if carry else None
        self._progress = carry.progress if carry else self._fresh_progress()
        self._goal: str | None = None
        self._exit: str | None = None
        self._wait_until: datetime | None = None
        self._wait_since: datetime | None = None
        self._attempt = 1
        self._due: datetime | None = carry.due if carry else None
        self._catch_up = carry.catch_up if carry else False
        self._held_out_until = carry.held_out_until if carry else None

    def _fresh_progress(self) -> JourneyProgress:
        return JourneyProgress(
            enrollment_id=self._data.enrollment_id,
            journey=self._definition.name,
            version=self._definition.version,
        )

    # ---- the run ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, data: JourneyInput) -> JourneyResult:
        """Walk the steps until the end, a goal, an exit or a stop."""
        workflow.upsert_search_attributes(
            [
                JOURNEY.value_set(self._definition.name),
                JOURNEY_VERSION.value_set(str(self._definition.version)),
                CONTACT_ID.value_set(data.contact_id),
            ]
        )
        try:
            if data.carry is None:
                await self._hold_until(data.not_before)
                self._due = workflow.now()
                await self._record_rollout()
                await self._assign_holdout()
            if self._held_out_until is not None:
                await self._watch_held_out(self._held_out_until)
            await self._walk()
            self._evaluate()
            self._raise_if_done()
            finish = _Finish("completed", "all steps done")
        except _Finish as ended:
            finish = ended
        except _Suspend:
            await self._continue_as_new()
        await self._finish(finish)
        return JourneyResult(
            enrollment_id=data.enrollment_id,
            outcome=finish.outcome,
            steps_taken=len({s.step for s in self._progress.steps if s.kind != "end"}),
        )

    async def _hold_until(self, moment: datetime | None) -> None:
        """Simulations start at a business hour: wait for it (a goal or stop still ends us)."""
        if moment is None or moment <= workflow.now():
            return
        with suppress(TimeoutError):
            await workflow.wait_condition(
                self._done, timeout=moment - workflow.now(), timeout_summary="start"
            )
        self._raise_if_done()

    async def _record_rollout(self) -> None:
        """A version in staged rollout: record this enrollment on it (its sends' error rate
        decides an automatic rollback, ``activities.rollout``)."""
        if self._definition.rollout is None or not workflow.patched(ROLLOUT_PATCH):
            return
        await self._store_record("assigned", ROLLOUT_STEP, f"v{self._definition.version}")

    async def _assign_holdout(self) -> None:
        """Is this contact in the journey's holdout? Both groups are recorded (the stats'
        denominators); a held-out one is watched, never sent to."""
        holdout = self._definition.holdout
        if holdout is None or not workflow.patched(HOLDOUT_PATCH):
            return
        held = in_holdout(self._data.contact_id, self._definition.name, holdout.percent)
        await self._store_record("assigned", HOLDOUT_STEP, "held_out" if held else "enrolled")
        if held:
            self._held_out_until = workflow.now() + holdout.window
            self._progress.steps.append(
                StepRecord(
                    step=HOLDOUT_STEP,
                    number=0,
                    kind="holdout",
                    at=workflow.now(),
                    outcome="held out",
                    detail=f"{holdout.percent:g}% holdout: nothing is sent; goals are watched"
                    f" until {_when(self._held_out_until)}",
                )
            )

    async def _watch_held_out(self, until: datetime) -> NoReturn:
        """A held-out enrollment: wait for a goal (a conversion without the journey), an exit,
        a stop, or the end of the window; never a step."""
        self._cursor = None
        await self._wait(until, "holdout window", _never)
        raise _Finish("completed", "held out: nothing sent; the holdout window ended")

    async def _walk(self) -> None:
        while self._cursor is not None:
            await self._gate()
            step = self._program.steps[self._cursor]
            resume = self._resume if self._resume and self._resume.cursor == step.id else None
            self._resume = None
            self._set_status("running", step.id)
            self._cursor = await self._execute(step, resume)

    async def _gate(self) -> None:
        """Between steps: goals and exit criteria, a pause, or time to continue as new."""
        self._evaluate()
        self._raise_if_done()
        if self._paused:
            self._set_status("paused", self._cursor)
            await workflow.wait_condition(
                lambda: not self._paused or self._done() or self._can_due()
            )
            self._raise_if_done()
        if self._can_due():
            raise _Suspend

    async def _execute(self, step: Step, resume: JourneyCarry | None) -> str | None:
        """Run one step; returns the id of the next one (None: the journey is done)."""
        if isinstance(step, SendStep):
            return await self._send(step, resume)
        if isinstance(step, WaitStep):
            return await self._wait_step(step, resume)
        if isinstance(step, WaitForStep):
            return await self._wait_for(step, resume)
        if isinstance(step, BranchStep):
            return self._branch(step)
        if isinstance(step, SplitStep):
            return await self._split(step)
        if isinstance(step, GoalStep):
            return self._goal_step(step)
        if isinstance(step, ExitStep):
            self._record(step, "exit", step.exit)
            raise _Finish("exited", step.exit, step.id)
        return await self._request_step(step)

    # ---- signals and query -------------------------------------------------------------------

    @workflow.signal(name="contact_changed")
    def contact_changed(self, update: JourneyContactUpdate) -> None:
        """The contact's latest facts and consent, and the events since the last update."""
        self._facts = update.facts
        self._consent = update.consent
        self._events = (self._events + list(update.new_events))[-_KEPT_EVENTS:]
        self._evaluate()

    @workflow.signal(name="stop")
    def stop(self, request: JourneyStop) -> None:
        """Exit now, or (``pause``) hold at the next step until ``resume``."""
        if request.pause:
            self._paused = True
        else:
            self._stop = request

    @workflow.signal(name="resume")
    def resume(self) -> None:
        """Carry on after a pause."""
        self._paused = False

    @workflow.query(name="progress")
    def progress(self) -> JourneyProgress:
        """The current step and every step taken, with when and what came of it."""
        return self._progress

    # ---- state checks ------------------------------------------------------------------------

    def _facts_now(self) -> ContactFacts:
        return self._facts.model_copy(update={"now": workflow.now()})

    def _evaluate(self) -> None:
        """Goals (all of them, all along) and the definition's exit criterion, right now."""
        if self._goal is not None or self._exit is not None:
            return
        facts = self._facts_now()
        for goal in self._program.goals():
            if evaluate(goal.goal, facts):
                self._goal = goal.id
                return
        if self._definition.exit is not None and evaluate(self._definition.exit, facts):
            self._exit = "exit criteria met"

    def _done(self) -> bool:
        return self._stop is not None or self._goal is not None or self._exit is not None

    def _raise_if_done(self) -> None:
        if self._stop is not None:
            if self._goal is not None and workflow.patched(GOAL_BEFORE_STOP_PATCH):
                raise _Finish("goal", f"goal '{self._goal}' met", self._goal)
            raise _Finish("stopped", self._stop.reason)
        if self._goal is not None:
            raise _Finish("goal", f"goal '{self._goal}' met", self._goal)
        if self._exit is not None:
            raise _Finish("exited", self._exit)

    def _can_due(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._data.history_limit
        )

    async def _wait(self, until: datetime, summary: str, ready: Callable[[], bool]) -> bool:
        """Wait until ``until`` or ``ready()``; True when ready. Ends or suspends the journey
        when a goal, an exit or a stop arrives, or when the history has grown long."""
        self._wait_until = until
        self._set_status("waiting", self._cursor)
        while True:
            self._raise_if_done()
            if ready():
                return True
            remaining = until - workflow.now()
            if remaining <= timedelta(0):
                return False
            with suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: ready() or self._done() or self._can_due(),
                    timeout=remaining,
                    timeout_summary=summary,
                )
            if self._can_due() and not self._done() and not ready():
                raise _Suspend

    # ---- send ------------------------------------------------------------------------------

    async def _send(self, step: SendStep, resume: JourneyCarry | None) -> str | None:
        label = self._program.label(step.id)
        late = self._stale(step) if resume is None else None
        if late is not None and self._skip_stale(step, late):
            return self._program.successor[step.id]
        attempt = resume.attempt if resume else 1
        if resume is not None and resume.wait_until is not None:
            self._attempt = attempt
            await self._wait(resume.wait_until, f"deferred {label}", _never)
            self._due = resume.wait_until
        for _ in range(_MAX_ASKS):
            verdict = await self._check(step, label)
            if verdict.verdict == "allow":
                await self._deliver(step, label, attempt)
                return self._program.successor[step.id]
            if verdict.verdict == "suppress" or verdict.until is None:
                self._record(step, "suppressed", verdict.reason)
                return self._program.successor[step.id]
            self._record(step, "deferred", f"until {_when(verdict.until)}: {verdict.reason}")
            attempt += 1
            self._attempt = attempt
            await self._wait(verdict.until, f"deferred {label}", _never)
            self._due = verdict.until
        self._record(step, "suppressed", f"deferred {_MAX_ASKS} times in a row")
        return self._program.successor[step.id]

    def _stale(self, step: SendStep) -> LatePolicy | None:
        """The send's late policy when its moment passed long ago, else None."""
        if self._due is None:
            return None
        policy = late_policy(self._definition, step, self._due, workflow.now())
        if policy is None or not workflow.patched(LATE_STEPS_PATCH):
            return None
        return policy

    def _skip_stale(self, step: SendStep, late: LatePolicy) -> bool:
        """Apply a stale send's policy; True when the send is left out.

        Sending late or skipping moves the rest of the schedule to now; skipping to the next
        step keeps it, so the waits that follow count from when they were due (``_catch_up``).
        """
        due, now = self._due, workflow.now()
        assert due is not None
        if late == "send_late":
            self._due, self._catch_up = now, False
            return False
        why = f"stale: due {_when(due)}, {_late_by(now - due)} late ({late})"
        self._record(step, "skipped", why)
        if late == "skip":
            self._due = now
        else:
            self._catch_up = True
        return True

    async def _check(self, step: SendStep, label: str) -> CheckSendResult:
        spec = step.send
        request = CheckSendInput(
            contact_id=self._data.contact_id,
            enrollment_id=self._data.enrollment_id,
            journey=self._definition.enrollment,
            enrolled_at=self._started_at,
            step=step.id,
            channel=spec.channel,
            transactional=spec.transactional,
            facts=self._facts_now(),
            consent=self._consent,
            time_zone=self._data.time_zone,
            own_sends=self._own_sends,
        )
        try:
            if workflow.patched(LOCAL_CHECK_PATCH):
                return await workflow.execute_local_activity_method(
                    JourneyActivities.check_send,
                    request,
                    start_to_close_timeout=_CHECK_TIMEOUT,
                    summary=f"check {label}",
                )
            return await workflow.execute_activity_method(
                JourneyActivities.check_send,
                request,
                start_to_close_timeout=_CHECK_TIMEOUT,
                summary=f"check {label}",
            )
        except ActivityError as exc:
            cause = exc.cause or exc
            return CheckSendResult(verdict="suppress", reason=f"send check failed: {cause}")

    async def _deliver(self, step: SendStep, label: str, attempt: int) -> None:
        key = f"{self._data.contact_id}/{self._data.enrollment_id}/{step.id}"
        if attempt > 1:
            key += f"~{attempt}"
        variant = self._program.variant_of(step.id)
        request = _effect_request(
            step.send,
            key=key,
            contact_id=self._data.contact_id,
            marketing=self._definition.marketing and not step.send.transactional,
            summary=label,
            context={
                "journey": self._definition.name,
                "step": step.id,
                "variant": variant[1] if variant else None,
            },
            now=workflow.now(),
        )
        queue: str | None = None
        if workflow.patched("engagement-paced-sends"):
            # The channel's own queue, rate-limited across all workers (models.effects).
            queue = send_task_queue(workflow.info().task_queue, request.channel)
        try:
            result = await workflow.execute_activity_method(
                EffectActivities.send_effect,
                request,
                task_queue=queue,
                start_to_close_timeout=self._definition.send_timeout,
                retry_policy=_SEND_RETRY,
                summary=label,
            )
        except ActivityError as exc:
            self._record(step, "failed", str(exc.cause or exc))
            return
        subject = result.rendered_subject
        if workflow.patched(SUBJECT_TEMPLATE_PATCH):
            subject = request.email.subject if request.email is not None else None
        self._record(step, result.status, result.detail, subject=subject)
        if result.status in ("sent", "duplicate"):
            self._own_sends[key] = workflow.now()
            if variant is not None:
                await self._store_record("variant_sent", variant[0], variant[1])

    # ---- waits -------------------------------------------------------------------------------

    async def _wait_step(self, step: WaitStep, resume: JourneyCarry | None) -> str | None:
        spec, now = step.wait, workflow.now()
        label = self._program.label(step.id)
        if resume is not None and resume.wait_until is not None:
            until: datetime | None = resume.wait_until
        elif spec.for_ is not None:
            start = self._due if self._catch_up and self._due is not None else now
            until = start + spec.for_
        else:
            assert spec.until is not None
            events = [*self._facts.events, *self._events]
            until = wait_until(spec.until, now, self._data.time_zone, events)
        if until is None:
            self._record(step, "skipped", f"no {spec.until.event if spec.until else ''} time")
            return self._program.successor[step.id]
        if until <= now:
            self._record(step, "skipped", f"{_when(until)} has passed")
            if self._catch_up:
                self._due = until
            return self._program.successor[step.id]
        await self._wait(until, f"wait {label}", _never)
        self._record(step, "waited", f"until {_when(until)}")
        self._due, self._catch_up = until, False
        return self._program.start_of(spec.then, step.id)

    async def _wait_for(self, step: WaitForStep, resume: JourneyCarry | None) -> str | None:
        spec, now = step.wait_for, workflow.now()
        since = resume.wait_since if resume and resume.wait_since else now
        until = resume.wait_until if resume and resume.wait_until else now + spec.timeout
        self._wait_since = since
        found: list[EventRecord] = []

        def arrived() -> bool:
            if not found:
                found.extend(self._matching(spec, since)[:1])
            return bool(found)

        label = self._program.label(step.id)
        if await self._wait(until, f"wait for {spec.event} ({label})", arrived):
            self._record(step, "event", f"{spec.event} at {_when(found[0].at)}")
            self._due, self._catch_up = workflow.now(), False
            return self._program.start_of(spec.on_event, step.id)
        self._record(step, "timeout", f"no {spec.event} by {_when(until)}")
        self._due, self._catch_up = until, False
        return self._program.start_of(spec.on_timeout, step.id)

    def _matching(self, spec: WaitForSpec, since: datetime) -> list[EventRecord]:
        """Events named ``spec.event`` at or after ``since`` whose properties pass ``where``."""
        condition = EventCondition(event=spec.event, where=spec.where)
        found = []
        for event in [*self._events, *self._facts.events]:
            if event.name != spec.event or event.at < since:
                continue
            single = ContactFacts(contact_id=self._data.contact_id, now=event.at, events=[event])
            if evaluate(condition, single):
                found.append(event)
        return found

    # ---- branch, split, goal -----------------------------------------------------------------

    def _branch(self, step: BranchStep) -> str | None:
        facts = self._facts_now()
        for index, arm in enumerate(step.branch):
            if arm.else_ is not None:
                self._record(step, "else", "no condition held")
                return self._program.start_of(arm.else_, step.id)
            if arm.if_ is not None and evaluate(arm.if_, facts):
                self._record(step, f"if #{index + 1}", f"arm {index + 1} of {len(step.branch)}")
                return self._program.start_of(arm.then, step.id)
        self._record(step, "no match", "no condition held and there is no else")
        return self._program.successor[step.id]

    async def _split(self, step: SplitStep) -> str | None:
        variant = self._assignments.get(step.id)
        if variant is None:
            variant = assign_variant(
                self._data.contact_id, self._definition.name, step.id, step.split
            )
            self._assignments[step.id] = variant
            await self._store_record("assigned", step.id, variant)
        self._record(step, f"variant {variant}", variant=variant)
        arm = next(v for v in step.split if v.variant == variant)
        return self._program.start_of(arm.steps, step.id)

    def _goal_step(self, step: GoalStep) -> str | None:
        if evaluate(step.goal, self._facts_now()):
            self._goal = step.id
            self._raise_if_done()
        self._record(step, "watching", "checked all along the journey")
        return self._program.successor[step.id]

    # ---- requests to the parent ----------------------------------------------------------------

    async def _request_step(self, step: Step) -> str | None:
        kind, name, value = _request_of(step)
        await self._tell_parent(kind, name=name, value=value)
        self._record(step, "requested", f"{kind} {name or ''}".strip())
        return self._program.successor[step.id]

    async def _tell_parent(
        self,
        kind: RequestKind,
        *,
        name: str | None = None,
        value: Any = None,
        outcome: str | None = None,
    ) -> None:
        request = JourneyRequest(
            enrollment_id=self._data.enrollment_id,
            kind=kind,
            name=name,
            value=value,
            outcome=outcome,
        )
        self._progress.requests.append(request)
        parent = workflow.info().parent
        if parent is None:
            return  # a simulation or a journey started by hand: the request is in progress
        handle = workflow.get_external_workflow_handle(parent.workflow_id)
        try:
            await handle.signal(JourneyParent.journey_request, request)
        except Exception as exc:  # the parent may be gone (merged contact): keep going
            workflow.logger.warning("journey_request not delivered: %s", exc)

    # ---- the end -------------------------------------------------------------------------------

    async def _finish(self, finish: _Finish) -> None:
        if finish.outcome == "goal" and finish.step is not None:
            await self._store_record("converted", finish.step, None)
        self._progress.steps.append(
            StepRecord(
                step=finish.step or "end",
                number=0,
                kind="end",
                at=workflow.now(),
                outcome=finish.outcome,
                detail=finish.reason,
            )
        )
        self._progress.outcome = finish.outcome
        self._set_status("finished", None)
        await self._tell_parent("finished", outcome=finish.outcome)

    async def _continue_as_new(self) -> NoReturn:
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._progress.runs += 1
        carry = JourneyCarry(
            cursor=self._cursor,
            wait_until=self._wait_until,
            wait_since=self._wait_since,
            attempt=self._attempt,
            started_at=self._started_at,
            progress=self._progress,
            recent_events=self._events,
            own_sends=self._own_sends,
            assignments=self._assignments,
            paused=self._paused,
            stop=self._stop,
            due=self._due,
            catch_up=self._catch_up,
            held_out_until=self._held_out_until,
        )
        workflow.continue_as_new(
            self._data.model_copy(
                update={
                    "facts": self._facts,
                    "consent": self._consent,
                    "carry": carry,
                    "not_before": None,
                }
            )
        )

    # ---- helpers -----------------------------------------------------------------------------

    def _record(
        self,
        step: Step,
        outcome: str,
        detail: str = "",
        *,
        subject: str | None = None,
        variant: str | None = None,
    ) -> None:
        self._wait_until = self._wait_since = None
        self._attempt = 1
        self._progress.steps.append(
            StepRecord(
                step=step.id,
                number=self._program.numbers[step.id],
                kind=step_kind(step),
                at=workflow.now(),
                outcome=outcome,
                detail=detail,
                subject=subject,
                variant=variant,
            )
        )

    def _set_status(self, status: JourneyStatus, step_id: str | None) -> None:
        self._progress.status = status
        self._progress.current_step = step_id
        where = self._program.label(step_id) if step_id else self._progress.outcome or ""
        workflow.set_current_details(f"{status}: {where}")

    async def _store_record(self, kind: RecordKind, step: str, variant: str | None) -> None:
        record = JourneyRecord(
            kind=kind,
            enrollment_id=self._data.enrollment_id,
            contact_id=self._data.contact_id,
            journey=self._definition.name,
            version=self._definition.version,
            step=step,
            variant=variant,
            at=workflow.now(),
        )
        await workflow.execute_activity_method(
            JourneyActivities.record_journey,
            record,
            start_to_close_timeout=_RECORD_TIMEOUT,
            summary=f"record {kind} {step}" + (f" {variant}" if variant else ""),
        )


def _never() -> bool:
    return False


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _late_by(delta: timedelta) -> str:
    """``3.5 days`` or ``5 hours``: how late a stale step is, in words."""
    hours = delta.total_seconds() / 3600
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    return f"{hours:.0f} hours" if hours >= 1 else f"{delta.total_seconds():.0f} seconds"


def _request_of(step: Step) -> tuple[RequestKind, str | None, Any]:
    """The parent request a ``set``, ``enroll`` or ``handoff`` step makes."""
    if isinstance(step, SetStep):
        spec = step.set
        if spec.trait is not None:
            return "set_trait", spec.trait, spec.value
        if spec.list_add is not None:
            return "list_add", spec.list_add, None
        return "list_remove", spec.list_remove, None
    if isinstance(step, EnrollStep):
        return "enroll", step.enroll, None
    if isinstance(step, RecycleStep):
        return "recycle", step.recycle, None
    assert isinstance(step, HandoffStep)
    return "handoff", None, step.handoff.reason


def _effect_request(
    spec: SendSpec,
    *,
    key: str,
    contact_id: str,
    marketing: bool,
    summary: str,
    context: dict[str, Any],
    now: datetime,
) -> EffectRequest:
    """The send path's request for one channel's step."""
    request = EffectRequest(
        key=key,
        contact_id=contact_id,
        channel=spec.channel,
        marketing=marketing,
        summary=summary,
        context=context,
    )
    if isinstance(spec, EmailSend):
        request.email = EmailPayload(
            subject=spec.subject, body=spec.body, html=spec.html, to_rep=spec.to_rep
        )
    elif isinstance(spec, SmsSend):
        request.sms = SmsPayload(text=spec.text)
    elif isinstance(spec, SlackSend):
        request.slack = SlackPayload(
            text=spec.text, webhook_url=spec.webhook_url, blocks=list(spec.blocks)
        )
    elif isinstance(spec, InAppSend):
        request.in_app = InAppPayload(
            title=spec.title, body=spec.body, cta_label=spec.cta_label, cta_url=spec.cta_url
        )
    elif isinstance(spec, CrmTaskSend):
        request.task = TaskPayload(
            title=spec.title,
            description=spec.description,
            owner=spec.owner,
            due_at=now + spec.due_in if spec.due_in else None,
            kind=spec.kind,
        )
    else:
        request.webhook = WebhookPayload(url=spec.url, body=dict(spec.body))
    return request
