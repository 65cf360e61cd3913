"""The component state machine: each component's record, moved by plans and runs.

A record (:class:`installer.status.ComponentRecord`) is what the status shows for
one component.  It moves when a plan wants or drops the component (``Pending``,
``Disabled``, ``Unsupported``), when a run starts (``Installing``/``Disabling``)
and when it ends: success (``Enabled``/``Disabled``, attempts cleared), cancel
(the state stays, so the next plan installs or uninstalls from there) or failure
(``Failed``, one more attempt, a retry after capped, jittered exponential
backoff).  Each user-visible transition is logged and posted as an Event.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from installer.components import ComponentTable
from installer.metrics import Metrics
from installer.planner import Action, Observed, Plan, State, Step
from installer.protocols import Clock, EventSink
from installer.runs import CANCELED, RunResult
from installer.status import ComponentRecord, ks_time, load_records

log = logging.getLogger("ks-installer")

Jitter = Callable[[float, float], float]


def backoff(attempt: int, *, base: float, cap: float, jitter: Jitter = random.uniform) -> float:
    """Capped exponential backoff with equal jitter: in [d/2, d], d = min(cap, base * 2**(n-1))."""
    delay = float(min(cap, base * 2 ** max(0, attempt - 1)))
    return delay / 2 + jitter(0, delay / 2)


def waiting_for(step: Step, plan: Plan) -> str:
    waiting = sorted(d for d in step.after if d in plan.steps)
    return f"waiting for {', '.join(waiting)}" if waiting else ""


class Records:
    """The records of every component, and when a failed one may run again."""

    def __init__(
        self,
        table: ComponentTable,
        *,
        event: EventSink,
        metrics: Metrics,
        clock: Clock,
        backoff_base: float,
        backoff_cap: float,
    ) -> None:
        self.table = table
        self.event = event
        self.metrics = metrics
        self.clock = clock
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.by_name: dict[str, ComponentRecord] = {}
        #: Failed components and when their retry is due (on ``clock``).
        self.retry_at: dict[str, float] = {}

    def get(self, name: str) -> ComponentRecord:
        return self.by_name.setdefault(name, ComponentRecord())

    def resume(self, status: dict[str, object]) -> None:
        """Take the records from a status written earlier (a restart, a new leader)."""
        self.by_name = load_records(self.table, status)
        log.info("resuming from status: %s", ", ".join(f"{n}={r.state}" for n, r in self.by_name.items()))

    def observed(self) -> dict[str, Observed]:
        return {
            n: Observed(
                r.state,
                r.digest,
                Action(r.action) if r.action in ("install", "uninstall") else None,
                inputs=r.applied_inputs or None,
            )
            for n, r in self.by_name.items()
        }

    def in_state(self, state: State) -> dict[str, ComponentRecord]:
        return {n: r for n, r in self.by_name.items() if r.state == state}

    def blocked(self) -> set[str]:
        """Components still backing off; forgets the retries that are due."""
        now = self.clock()
        for name in [n for n, t in self.retry_at.items() if t <= now]:
            del self.retry_at[name]
        return set(self.retry_at)

    # -- what the plan says -------------------------------------------------------------
    def mark_unsupported(self, plan: Plan) -> None:
        for name in plan.unsupported:
            if self.get(name).transition(
                State.UNSUPPORTED, "enabled in spec, but this installer does not install it yet"
            ):
                log.warning("[%s] enabled in spec but not supported by this installer", name)
                self.event("Warning", "ComponentUnsupported", f"{name} is enabled but not supported yet")
        for name in list(self.in_state(State.UNSUPPORTED)):
            if name not in plan.unsupported:
                del self.by_name[name]

    def follow(self, plan: Plan, *, busy: set[str]) -> None:
        """Move the records of components not running to what ``plan`` says of them."""
        settled = (State.DISABLED, State.ENABLED, State.INSTALLING, State.DISABLING)
        for name, reasons in plan.desired.items():
            rec = self.get(name)
            rec.reasons = reasons
            if name in busy or name not in plan.steps:
                continue
            if rec.state in settled:
                rec.transition(State.PENDING, waiting_for(plan.steps[name], plan))
            elif rec.state == State.PENDING:
                rec.message = waiting_for(plan.steps[name], plan)
        for name, rec in self.by_name.items():
            if name not in plan.desired and rec.state == State.PENDING and name not in busy:
                rec.transition(State.DISABLED)
                rec.reasons = []

    # -- what runs do -------------------------------------------------------------------
    def started(self, step: Step, *, drift: bool) -> None:
        name = step.component
        rec = self.get(name)
        rec.action = str(step.action)
        rec.tasks = {}
        if drift:
            return  # a drift check of an Enabled component: its state does not change
        installing = step.action == Action.INSTALL
        rec.transition(
            State.INSTALLING if installing else State.DISABLING, "; ".join(rec.reasons) if installing else ""
        )
        verb = "installing" if installing else "uninstalling"
        why = f" ({'; '.join(rec.reasons)})" if installing and rec.reasons else ""
        log.info("[%s] %s%s", name, verb, why)
        self.event(
            "Normal", f"Component{'Installing' if installing else 'Disabling'}", f"{name}: {verb}{why}"
        )

    def finished(self, step: Step, result: RunResult, *, drift: bool, canceled_because: str) -> None:
        name = step.component
        action = str(step.action)
        rec = self.get(name)
        self.metrics.runs.labels(name, action, result.status).inc()
        self.metrics.run_seconds.labels(name, action).observe(result.duration)
        rec.tasks = result.progress.as_status()
        rec.last_run_seconds = round(result.duration, 1)
        if result.ok:
            # The run's own removals decide: none left behind clears the last run's list.
            rec.leftovers = list(result.leftovers)
        p = result.progress
        summary = f"{p.started} tasks, {p.changed} changed, {result.duration:.1f}s"
        if result.ok and step.action == Action.INSTALL:
            rec.digest = step.digest
            rec.applied_inputs = dict(step.inputs) or rec.applied_inputs
            self._succeeded(rec, State.ENABLED)
            rec.enabled_time = rec.enabled_time or ks_time()
            if not drift:
                log.info("[%s] enabled (%s)", name, summary)
                self.event("Normal", "ComponentEnabled", f"{name} enabled: {summary}")
            elif p.changed:
                log.warning("[%s] drift repaired: %s", name, summary)
                self.event("Warning", "DriftRepaired", f"{name}: {summary}")
        elif result.ok:
            rec.digest = None
            rec.applied_inputs = {}
            rec.enabled_time = None
            rec.reasons = []
            self._succeeded(rec, State.DISABLED)
            log.info("[%s] disabled and removed (%s)", name, summary)
            self.event("Normal", "ComponentDisabled", f"{name} disabled: {summary}")
        elif result.status == CANCELED:
            # The state stays Installing/Disabling: a cut-short run may have left objects, so the
            # next plan uninstalls (or installs) the component from here.
            rec.message = f"canceled: {canceled_because}"
            log.info("[%s] %s canceled: %s", name, action, canceled_because)
        else:
            self._failed(name, rec, action, result)
        if result.ok and result.leftovers:
            listed = "; ".join(
                f"{x.get('kind')} {x.get('name')}: {x.get('reason')}" for x in result.leftovers
            )
            rec.message = f"{len(result.leftovers)} object(s) not removed (status leftovers): {listed}"[:1000]
            log.warning("[%s] not removed: %s", name, listed)
            self.event("Warning", "ObjectsLeftBehind", f"{name}: {listed}"[:1000])
        self.metrics.failed_components.set(len(self.in_state(State.FAILED)))

    def _succeeded(self, rec: ComponentRecord, state: State) -> None:
        rec.attempts = 0
        rec.failed_task = None
        rec.transition(state)

    def _failed(self, name: str, rec: ComponentRecord, action: str, result: RunResult) -> None:
        rec.attempts += 1
        rec.failed_task = result.failed_task
        where = f"task {result.failed_task!r} failed: " if result.failed_task else ""
        message = f"{action} {where}{result.message}"
        rec.transition(State.FAILED, message)
        delay = backoff(rec.attempts, base=self.backoff_base, cap=self.backoff_cap)
        self.retry_at[name] = self.clock() + delay
        log.error(
            "[%s] %s failed (attempt %d, retry in %.0fs): %s", name, action, rec.attempts, delay, message
        )
        self.event("Warning", "ComponentFailed", f"{name}: {message}")
