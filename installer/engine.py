"""The reconcile engine: watch the ClusterConfiguration, plan, run, report.

One scheduling loop owns all state.  It wakes on a spec change (a new
``metadata.generation``; status writes never bump it), a finished run, a due
retry or a due drift check, then re-plans from the **latest** spec and what
the records say, and starts whatever is runnable under the global cap.  Spec
changes that arrive during a run are therefore coalesced: steps not yet started
are planned from the newest spec, a component whose inputs changed while it
ran is simply planned again afterwards, and an install whose component was
switched off meanwhile is cancelled.

The pieces it drives live beside it: the runs in flight
(:mod:`installer.inflight`), the component state machine
(:mod:`installer.records`), preflight (:mod:`installer.preflight`), the run
requests (:mod:`installer.roles`) and the status it writes
(:mod:`installer.reporting`).  Its API and runner are arguments (see
:mod:`installer.protocols`), and so is its clock; :meth:`Engine.step` is one
pass of the loop, so tests drive it without processes or sleeps.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from installer import __version__
from installer.components import ComponentTable
from installer.errors import PermanentError, TemporaryError
from installer.inflight import InFlight, InFlightRuns
from installer.metrics import Health, Metrics
from installer.pause import Pause, pause_of
from installer.planner import Action, Plan, State, Step, make_plan, runnable
from installer.preflight import Preflight
from installer.protocols import Clock, ClusterApi, RoleRunner
from installer.reasons import step_reasons, summary_line
from installer.records import Records
from installer.reporting import StatusWriter
from installer.roles import PREFLIGHT, PREFLIGHT_ACTION, RunRequests, check_roles, roles_paths
from installer.runs import Progress, RunResult
from installer.settings import Settings

log = logging.getLogger("ks-installer")
#: Seconds before trying again what the API server refused for good (a person must fix it).
PERMANENT_RETRY = 30.0


class Engine:
    def __init__(
        self,
        *,
        settings: Settings,
        kube: ClusterApi,
        table: ComponentTable,
        runner: RoleRunner,
        metrics: Metrics,
        health: Health,
        clock: Clock = time.monotonic,
    ) -> None:
        self._wake = threading.Event()
        self.settings = settings
        self.kube = kube
        self.table = table
        self.metrics = metrics
        self.health = health
        self.clock = clock
        check_roles(table, roles_paths(settings))
        self.requests = RunRequests(table, settings, namespace=kube.namespace, name=kube.name)
        backoff = {"backoff_base": settings.backoff_base, "backoff_cap": settings.backoff_cap}
        self.records = Records(table, event=self._event, metrics=metrics, clock=clock, **backoff)
        self.preflight = Preflight(
            role=table.preflight_role,
            runner=runner,
            request_for=lambda spec: self.requests.make(PREFLIGHT, PREFLIGHT_ACTION, spec),
            event=self._event,
            clock=clock,
            **backoff,
        )
        self.status = StatusWriter(api=kube, table=table, event=self._event)
        self.cc: dict[str, Any] | None = None
        self.synced = False
        self.runs = InFlightRuns(runner, max_parallel=settings.max_parallel, wake=self._wake.set)
        self.drift_due: set[str] = set()
        self.next_drift = clock() + settings.drift_interval if settings.drift_interval else None
        self.idle_logged: int | None = None
        self.held_logged: tuple[int | None, Pause, tuple[str, ...]] | None = None
        self.plan_logged: int | None = None
        self._last_pass = float("-inf")  # when the last pass of the loop began (on ``clock``)
        self._cc_lock = threading.Lock()

    # -- input from the watch ---------------------------------------------------------
    def on_cc(self, kind: str, obj: dict[str, Any]) -> None:
        with self._cc_lock:
            if kind == "DELETED" or not obj:
                if self.cc is not None:
                    log.info(
                        "ClusterConfiguration %s/%s is gone; waiting for it",
                        self.kube.namespace,
                        self.kube.name,
                    )
                self.cc = None
            else:
                old_gen = (self.cc or {}).get("metadata", {}).get("generation")
                new_gen = obj.get("metadata", {}).get("generation")
                same_pause = pause_of(self.cc) == pause_of(obj)
                self.cc = obj
                if old_gen == new_gen and same_pause and self.synced:
                    return  # a status or metadata write (ours included): nothing to plan
            self.synced = True
        self._wake.set()

    def watch_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                for kind, obj in self.kube.watch_cc(stop):
                    self.on_cc(kind, obj)
            except TemporaryError as exc:
                log.warning("watch: %s", exc)
                stop.wait(2)
            except PermanentError as exc:
                # Forbidden or refused: a person has to fix it (RBAC, the CRD); keep looking, slowly.
                log.error("watch: %s; trying again in %.0fs", exc, PERMANENT_RETRY)
                stop.wait(PERMANENT_RETRY)

    # -- the loop ---------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Reconcile until ``stop`` is set (leadership lost or shutdown)."""
        watcher = threading.Thread(target=self.watch_loop, args=(stop,), name="watch", daemon=True)
        watcher.start()
        # Stepping down must not wait for the loop's idle timeout.
        threading.Thread(target=self._wake_on, args=(stop,), name="stop", daemon=True).start()
        try:
            while not stop.is_set():
                self.health.beat()
                self.wait(self.seconds_until_due())
                if stop.is_set():
                    break
                try:
                    self.step()
                except TemporaryError as exc:
                    log.warning("reconcile: %s; retrying", exc)
                    stop.wait(2)
                except PermanentError as exc:
                    log.error("reconcile: %s; trying again in %.0fs", exc, PERMANENT_RETRY)
                    stop.wait(PERMANENT_RETRY)
        finally:
            self.shutdown()

    def _wake_on(self, stop: threading.Event) -> None:
        stop.wait()
        self._wake.set()

    def wait(self, timeout: float) -> bool:
        """Sleep until something happened (a spec change, a result, progress) or ``timeout``."""
        woken = self._wake.wait(timeout=timeout)
        self._wake.clear()
        return woken

    def step(self) -> None:
        """One pass of the loop: take in progress and results, then re-plan and start runs."""
        self._last_pass = self.clock()
        self._drain()
        self.reconcile()

    def seconds_until_due(self) -> float:
        """How long the loop may sleep before a retry or a drift check is due (at most 10s)."""
        now = self.clock()
        deadlines = [*self.records.retry_at.values(), self.preflight.retry_at, self.next_drift]
        # One that was due when the last pass began had its chance: that pass could not act on
        # it (preflight refuses the spec). Waking for it again at once would spin.
        pending = [t for t in deadlines if t is not None and t > self._last_pass]
        return max(0.05, min(10.0, min(pending) - now)) if pending else 10.0

    def shutdown(self) -> None:
        """Cancel the runs in flight, record how they ended and write the status once more."""
        self.runs.stop_all("the operator stopped")
        self._drain()
        try:
            self.write_status()
        except TemporaryError as exc:
            log.warning("final status write failed: %s", exc)

    def _drain(self) -> None:
        for name, prog in self.runs.take_progress():
            self._on_progress(name, prog)
        for flight, result in self.runs.take_results():
            self._on_result(flight, result)

    # -- planning ---------------------------------------------------------------------
    def _plan(self, cc: dict[str, Any]) -> Plan:
        return make_plan(self.table, cc.get("spec") or {}, self.records.observed(), version=__version__)

    def reconcile(self) -> None:
        with self._cc_lock:
            cc = self.cc
        if cc is None:
            return
        self.metrics.reconciles.inc()
        live = cc.get("status") or {}
        if not self.records.by_name and live.get("components"):
            self.records.resume(live)
            # The task counts of the runs that got the components where they are.
            for name, rec in self.records.by_name.items():
                done = rec.tasks.get("done")
                if rec.action and done and rec.state in (State.ENABLED, State.DISABLED):
                    self.requests.learn(name, rec.action, int(done))
        self.status.adopt(live)

        generation = cc.get("metadata", {}).get("generation")
        plan = self._plan(cc)
        now = self.clock()
        if self.next_drift and now >= self.next_drift:
            self.drift_due = {n for n in plan.desired if n not in plan.steps}
            self.next_drift = now + self.settings.drift_interval
            if self.drift_due:
                log.info("drift check: re-running %s", ", ".join(sorted(self.drift_due)))

        self.records.mark_unsupported(plan)
        self._log_plan(cc, plan, generation)
        self._cancel_stale(plan)
        work = bool(plan.steps) or bool(self.drift_due)
        if work and not self.preflight.check(cc.get("spec") or {}, generation):
            self.records.follow(plan, busy=self.runs.names())
            self.write_status(generation=generation, plan=plan)
            return
        pause = pause_of(cc)
        self._start_runnable(cc, plan, generation, pause)
        self._log_held(plan, generation, pause)
        self.records.follow(plan, busy=self.runs.names())
        idle = not plan.steps and not self.runs.by_name
        if idle and self.idle_logged != generation:
            self.idle_logged = generation
            log.info(
                "[plan] nothing to do: %d components up to date (generation %s)",
                len(plan.desired),
                generation,
            )
        elif not idle:
            self.idle_logged = None
        self.metrics.queue_depth.set(len([s for s in plan.steps if s not in self.runs.by_name]))
        self.metrics.in_flight.set(len(self.runs.by_name))
        self.write_status(generation=generation, plan=plan)

    def _log_plan(self, cc: dict[str, Any], plan: Plan, generation: int | None) -> None:
        """One line per generation that has work (also the first after a start): what runs and why."""
        if not plan.steps or generation == self.plan_logged:
            return
        self.plan_logged = generation
        reasons = step_reasons(self.table, cc.get("spec") or {}, plan, self.records.observed())
        log.info("[plan] generation %s: %s", generation, summary_line(plan, reasons))

    def _cancel_stale(self, plan: Plan) -> None:
        for name, flight in self.runs.by_name.items():
            stale = (flight.step.action == Action.INSTALL and name not in plan.desired) or (
                flight.step.action == Action.UNINSTALL and name in plan.desired
            )
            if stale and flight.stop("the spec changed"):
                log.info("[%s] cancelling %s: the spec changed", name, flight.step.action)

    def _start_runnable(self, cc: dict[str, Any], plan: Plan, generation: int | None, pause: Pause) -> None:
        blocked = self.records.blocked()
        steps = runnable(plan, done=set(), running=self.runs.names(), blocked=blocked)
        for name in sorted(self.drift_due - self.runs.names() - set(plan.steps)):
            c = self.table[name]
            needs_ok = all(n not in plan.steps for n in (x.name for x in c.needs))
            if needs_ok:
                steps.append(
                    Step(
                        name,
                        Action.INSTALL,
                        plan.digests[name],
                        frozenset(),
                        inputs=tuple(sorted(plan.inputs[name].items())),
                    )
                )
        for step in steps:
            if self.runs.full:
                break
            if pause.holds(step.component):
                continue
            self._start(cc, plan, step, generation, drift=step.component not in plan.steps)

    def held(self, plan: Plan, pause: Pause) -> list[str]:
        """Planned steps the pause holds (not running, so not started)."""
        return sorted(n for n in plan.steps if pause.holds(n) and n not in self.runs.by_name)

    def _log_held(self, plan: Plan, generation: int | None, pause: Pause) -> None:
        held = tuple(self.held(plan, pause))
        key = (generation, pause, held)
        if held and key != self.held_logged:
            log.info(
                "[plan] paused for %s: holding %s",
                pause.describe(),
                ", ".join(f"{n} ({plan.steps[n].action})" for n in held),
            )
        self.held_logged = key if held else None

    # -- runs -------------------------------------------------------------------------
    def _start(
        self, cc: dict[str, Any], plan: Plan, step: Step, generation: int | None, *, drift: bool
    ) -> None:
        flight = InFlight(step=step, generation=generation, started=self.clock(), drift=drift)
        self.records.started(step, drift=drift)
        spec = cc.get("spec") or {}
        self.runs.start(
            flight, self.requests.make(step.component, str(step.action), spec, desired=plan.desired)
        )

    def _on_progress(self, name: str, prog: Progress) -> None:
        flight = self.runs.by_name.get(name)
        rec = self.records.by_name.get(name)
        if not flight or not rec:
            return
        total = prog.as_status().get("total")
        log.info(
            "[%s] %d/%s tasks: %s", name, prog.started, total if total is not None else "?", prog.current_task
        )
        rec.tasks = prog.as_status()
        now = self.clock()
        if not flight.drift and now - flight.last_progress_write >= self.settings.progress_interval:
            flight.last_progress_write = now
            try:
                self.write_status()
            except TemporaryError as exc:
                log.warning("progress status write failed: %s", exc)

    def _on_result(self, flight: InFlight, result: RunResult) -> None:
        step = flight.step
        name = step.component
        if result.ok:
            self.requests.learn(name, str(step.action), result.progress.started)
            if step.action == Action.INSTALL:
                self.drift_due.discard(name)
        self.records.finished(step, result, drift=flight.drift, canceled_because=flight.canceled_because)

    # -- reporting ----------------------------------------------------------------------
    def _event(self, kind: str, reason: str, message: str) -> None:
        with self._cc_lock:
            cc = self.cc
        if cc is not None:
            self.kube.post_event(cc, kind=kind, reason=reason, message=message)

    def write_status(self, *, generation: int | None = None, plan: Plan | None = None) -> None:
        with self._cc_lock:
            cc = self.cc
        if cc is None:
            return
        self.status.write(
            cc,
            records=self.records.by_name,
            plan=plan if plan is not None else self._plan(cc),
            generation=generation if generation is not None else self.status.generation,
            busy=self.runs.names(),
            preflight_failure=self.preflight.failure,
            pause=pause_of(cc),
        )
