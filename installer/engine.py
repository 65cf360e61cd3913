"""The reconcile engine: watch the ClusterConfiguration, plan, run, report.

One scheduling loop owns all state.  It wakes on a spec change (a new
``metadata.generation``; status writes never bump it), a finished run, a due
retry or a due drift check, then re-plans from the **latest** spec and what
the records say, and starts whatever is runnable under the global cap.  Spec
changes that arrive during a run are therefore coalesced: steps not yet started
are planned from the newest spec, a component whose inputs changed while it
ran is simply planned again afterwards, and an install whose component was
switched off meanwhile is cancelled.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installer import __version__
from installer.components import ComponentTable
from installer.errors import ConfigurationError, TemporaryError
from installer.kube import Kube
from installer.metrics import Health, Metrics
from installer.planner import Action, Observed, Plan, State, Step, make_plan, runnable
from installer.runs import CANCELED, Progress, Runner, RunRequest, RunResult, estimate_tasks
from installer.settings import Settings
from installer.status import (
    ComponentRecord,
    build_status,
    ks_time,
    load_records,
    managed_keys,
    merge_patch,
)

log = logging.getLogger("ks-installer")

PREFLIGHT = "preflight"


@dataclass
class InFlight:
    step: Step
    cancel: threading.Event
    generation: int | None
    drift: bool = False
    started: float = field(default_factory=time.monotonic)
    last_progress_write: float = 0.0


def backoff(attempt: int, *, base: float, cap: float) -> float:
    """Capped exponential backoff with equal jitter: in [d/2, d], d = min(cap, base * 2**(n-1))."""
    delay = float(min(cap, base * 2 ** max(0, attempt - 1)))
    return delay / 2 + random.uniform(0, delay / 2)


class Engine:
    def __init__(
        self,
        *,
        settings: Settings,
        kube: Kube,
        table: ComponentTable,
        runner: Runner,
        metrics: Metrics,
        health: Health,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.table = table
        self.runner = runner
        self.metrics = metrics
        self.health = health
        self.records: dict[str, ComponentRecord] = {}
        self.cc: dict[str, Any] | None = None
        self.synced = False
        self.in_flight: dict[str, InFlight] = {}
        self.retry_at: dict[str, float] = {}
        self.drift_due: set[str] = set()
        self.next_drift = time.monotonic() + settings.drift_interval if settings.drift_interval else None
        self.preflight: tuple[int | None, bool, str] | None = None  # (generation, passed, message)
        self.preflight_attempts = 0
        self.expected_tasks: dict[tuple[str, str], int] = {}
        self.written: dict[str, Any] = {}
        self.ready_announced = False
        self.idle_logged: int | None = None
        self._wake = threading.Event()
        self._results: queue.Queue[tuple[str, InFlight, RunResult]] = queue.Queue()
        self._progress: queue.Queue[tuple[str, Progress]] = queue.Queue()
        self._cc_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.max_parallel), thread_name_prefix="run")
        self.check_roles()

    # -- setup -----------------------------------------------------------------------
    def roles_paths(self) -> list[Path]:
        return [*self.settings.extra_roles_paths, self.settings.project_dir / "roles"]

    def role_dir(self, role: str) -> Path | None:
        for base in self.roles_paths():
            if (base / role / "tasks").is_dir():
                return base / role
        return None

    def check_roles(self) -> None:
        needed = [c.role for c in self.table if c.supported and c.role]
        if self.table.preflight_role:
            needed.append(self.table.preflight_role)
        missing = [r for r in needed if self.role_dir(r) is None]
        if missing:
            paths = ", ".join(str(p) for p in self.roles_paths())
            raise ConfigurationError(f"roles not found: {', '.join(missing)} (searched {paths})")

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
                self.cc = obj
                if old_gen == new_gen and self.synced:
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

    # -- the loop ---------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Reconcile until ``stop`` is set (leadership lost or shutdown)."""
        watcher = threading.Thread(target=self.watch_loop, args=(stop,), name="watch", daemon=True)
        watcher.start()
        try:
            while not stop.is_set():
                self.health.beat()
                self._wake.wait(timeout=self._sleep_for())
                self._wake.clear()
                if stop.is_set():
                    break
                self._drain()
                try:
                    self.reconcile()
                except TemporaryError as exc:
                    log.warning("reconcile: %s; retrying", exc)
                    stop.wait(2)
        finally:
            self.shutdown()

    def _sleep_for(self) -> float:
        now = time.monotonic()
        deadlines = [t for t in self.retry_at.values()]
        if self.next_drift:
            deadlines.append(self.next_drift)
        if not deadlines:
            return 10.0
        return max(0.05, min(10.0, min(deadlines) - now))

    def shutdown(self) -> None:
        for flight in self.in_flight.values():
            flight.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._drain()
        try:
            self.write_status()
        except TemporaryError as exc:
            log.warning("final status write failed: %s", exc)

    def _drain(self) -> None:
        while True:
            try:
                name, prog = self._progress.get_nowait()
            except queue.Empty:
                break
            self._on_progress(name, prog)
        while True:
            try:
                name, flight, result = self._results.get_nowait()
            except queue.Empty:
                break
            self._on_result(name, flight, result)

    # -- planning ---------------------------------------------------------------------
    def _observed(self) -> dict[str, Observed]:
        return {
            n: Observed(r.state, r.digest, Action(r.action) if r.action in ("install", "uninstall") else None)
            for n, r in self.records.items()
        }

    def reconcile(self) -> None:
        with self._cc_lock:
            cc = self.cc
        if cc is None:
            return
        self.metrics.reconciles.inc()
        if not self.records and (cc.get("status") or {}).get("components"):
            self.records = load_records(self.table, cc.get("status") or {})
            log.info("resuming from status: %s", ", ".join(f"{n}={r.state}" for n, r in self.records.items()))
        if not self.written:
            live = cc.get("status") or {}
            self.written = {k: v for k, v in live.items() if k in managed_keys(self.table)}

        spec = cc.get("spec") or {}
        generation = cc.get("metadata", {}).get("generation")
        plan = make_plan(self.table, spec, self._observed(), version=__version__)
        now = time.monotonic()
        if self.next_drift and now >= self.next_drift:
            self.drift_due = {n for n in plan.desired if n not in plan.steps}
            self.next_drift = now + self.settings.drift_interval
            if self.drift_due:
                log.info("drift check: re-running %s", ", ".join(sorted(self.drift_due)))

        self._mark_unsupported(plan)
        self._cancel_stale(plan)
        work = bool(plan.steps) or bool(self.drift_due)
        if work and not self._preflight_ok(cc, generation):
            self._update_records(plan)
            self.write_status(generation=generation, plan=plan)
            return
        self._start_runnable(cc, plan, generation)
        self._update_records(plan)
        idle = not plan.steps and not self.in_flight
        if idle and self.idle_logged != generation:
            self.idle_logged = generation
            log.info(
                "[plan] nothing to do: %d components up to date (generation %s)",
                len(plan.desired),
                generation,
            )
        elif not idle:
            self.idle_logged = None
        self.metrics.queue_depth.set(len([s for s in plan.steps if s not in self.in_flight]))
        self.metrics.in_flight.set(len(self.in_flight))
        self.write_status(generation=generation, plan=plan)

    def _mark_unsupported(self, plan: Plan) -> None:
        for name in plan.unsupported:
            rec = self.records.setdefault(name, ComponentRecord())
            if rec.transition(
                State.UNSUPPORTED, "enabled in spec, but this installer does not install it yet"
            ):
                log.warning("[%s] enabled in spec but not supported by this installer", name)
                self._event("Warning", "ComponentUnsupported", f"{name} is enabled but not supported yet")
        for name in [n for n, r in self.records.items() if r.state == State.UNSUPPORTED]:
            if name not in plan.unsupported:
                del self.records[name]

    def _cancel_stale(self, plan: Plan) -> None:
        for name, flight in self.in_flight.items():
            stale = (flight.step.action == Action.INSTALL and name not in plan.desired) or (
                flight.step.action == Action.UNINSTALL and name in plan.desired
            )
            if stale and not flight.cancel.is_set():
                log.info("[%s] cancelling %s: the spec changed", name, flight.step.action)
                flight.cancel.set()

    def _start_runnable(self, cc: dict[str, Any], plan: Plan, generation: int | None) -> None:
        now = time.monotonic()
        blocked = {n for n, t in self.retry_at.items() if t > now}
        for name in [n for n, t in self.retry_at.items() if t <= now]:
            del self.retry_at[name]
        steps = runnable(plan, done=set(), running=set(self.in_flight), blocked=blocked)
        for name in sorted(self.drift_due - set(self.in_flight) - set(plan.steps)):
            c = self.table[name]
            needs_ok = all(n not in plan.steps for n in (x.name for x in c.needs))
            if needs_ok:
                steps.append(Step(name, Action.INSTALL, plan.digests[name], frozenset()))
        for step in steps:
            if len(self.in_flight) >= self.settings.max_parallel:
                break
            self._start(cc, plan, step, generation, drift=step.component not in plan.steps)

    def _update_records(self, plan: Plan) -> None:
        for name, reasons in plan.desired.items():
            rec = self.records.setdefault(name, ComponentRecord())
            rec.reasons = reasons
            if name in self.in_flight:
                continue
            if name in plan.steps and rec.state in (
                State.DISABLED,
                State.ENABLED,
                State.INSTALLING,
                State.DISABLING,
            ):
                waiting = [d for d in plan.steps[name].after if d in plan.steps]
                rec.transition(State.PENDING, f"waiting for {', '.join(sorted(waiting))}" if waiting else "")
            elif name in plan.steps and rec.state == State.PENDING:
                waiting = [d for d in plan.steps[name].after if d in plan.steps]
                rec.message = f"waiting for {', '.join(sorted(waiting))}" if waiting else ""
        for name, rec in self.records.items():
            if name not in plan.desired and rec.state == State.PENDING and name not in self.in_flight:
                rec.transition(State.DISABLED)
                rec.reasons = []

    # -- preflight ----------------------------------------------------------------------
    def _preflight_ok(self, cc: dict[str, Any], generation: int | None) -> bool:
        role = self.table.preflight_role
        if not role:
            return True
        if self.preflight and self.preflight[0] == generation:
            if self.preflight[1]:
                return True
            if self.retry_at.get(PREFLIGHT, 0) > time.monotonic():
                return False  # failed for this spec; retried after its backoff
        spec = cc.get("spec") or {}
        log.info("[preflight] checking the spec and the cluster before any change")
        result = self.runner.run(self._request(PREFLIGHT, "main", role, spec))
        if result.ok:
            self.preflight = (generation, True, "")
            self.preflight_attempts = 0
            self.retry_at.pop(PREFLIGHT, None)
            return True
        message = (
            f"task {result.failed_task!r}: {result.message}" if result.failed_task else str(result.message)
        )
        self.preflight_attempts += 1
        self.preflight = (generation, False, message)
        self.retry_at[PREFLIGHT] = time.monotonic() + backoff(
            self.preflight_attempts, base=self.settings.backoff_base, cap=self.settings.backoff_cap
        )
        log.error("[preflight] failed, nothing was changed: %s", message)
        self._event("Warning", "PreflightFailed", message)
        return False

    # -- runs -------------------------------------------------------------------------
    def _request(
        self, name: str, action: str, role: str, spec: dict[str, Any], *, desired: list[str] | None = None
    ) -> RunRequest:
        component = self.table[name] if name in self.table.names else None
        timeout = (
            component.timeout if component and component.timeout else None
        ) or self.settings.run_timeout
        key = (role, action)
        expected = self.expected_tasks.get(key)
        if expected is None:
            role_dir = self.role_dir(role)
            estimate = estimate_tasks(role_dir, f"{action}.yml") if role_dir else None
            # +1 for the playbook's own task that includes the role.
            expected = estimate + 1 if estimate is not None else None
        variables = {
            "ks_component": name,
            "ks_action": action,
            "ks_role": role,
            "ks_spec": spec,
            "ks_cluster_configuration": {"name": self.kube.name, "namespace": self.kube.namespace},
            "ks_installer_version": __version__,
            "ks_desired_components": list(desired or []),
        }
        return RunRequest(
            component=name,
            action=action,
            role=role,
            variables=variables,
            timeout=timeout,
            expected_tasks=expected,
        )

    def _start(
        self, cc: dict[str, Any], plan: Plan, step: Step, generation: int | None, *, drift: bool
    ) -> None:
        name = step.component
        component = self.table[name]
        assert component.role
        rec = self.records.setdefault(name, ComponentRecord())
        flight = InFlight(step=step, cancel=threading.Event(), generation=generation, drift=drift)
        self.in_flight[name] = flight
        rec.action = str(step.action)
        rec.tasks = {}
        if not drift:
            state = State.INSTALLING if step.action == Action.INSTALL else State.DISABLING
            rec.transition(state, "; ".join(rec.reasons) if step.action == Action.INSTALL else "")
            verb = "installing" if step.action == Action.INSTALL else "uninstalling"
            why = f" ({'; '.join(rec.reasons)})" if step.action == Action.INSTALL and rec.reasons else ""
            log.info("[%s] %s%s", name, verb, why)
            reason = "Installing" if step.action == Action.INSTALL else "Disabling"
            self._event("Normal", f"Component{reason}", f"{name}: {verb}{why}")
        request = self._request(
            name, str(step.action), component.role, cc.get("spec") or {}, desired=list(plan.desired)
        )

        def work() -> None:
            def progress(p: Progress) -> None:
                self._progress.put((name, Progress(**vars(p))))
                self._wake.set()

            try:
                result = self.runner.run(request, cancel=flight.cancel, on_progress=progress)
            except Exception as exc:  # the runner reports its own errors; this is a last resort
                log.exception("[%s] run crashed", name)
                result = RunResult(
                    status="error", rc=None, progress=Progress(), duration=0.0, message=str(exc)
                )
            self._results.put((name, flight, result))
            self._wake.set()

        self._pool.submit(work)

    def _on_progress(self, name: str, prog: Progress) -> None:
        flight = self.in_flight.get(name)
        rec = self.records.get(name)
        if not flight or not rec:
            return
        total = prog.as_status().get("total")
        log.info(
            "[%s] %d/%s tasks: %s", name, prog.started, total if total is not None else "?", prog.current_task
        )
        rec.tasks = prog.as_status()
        now = time.monotonic()
        if not flight.drift and now - flight.last_progress_write >= self.settings.progress_interval:
            flight.last_progress_write = now
            try:
                self.write_status()
            except TemporaryError as exc:
                log.warning("progress status write failed: %s", exc)

    def _on_result(self, name: str, flight: InFlight, result: RunResult) -> None:
        self.in_flight.pop(name, None)
        rec = self.records.setdefault(name, ComponentRecord())
        step = flight.step
        action = str(step.action)
        outcome = result.status
        self.metrics.runs.labels(name, action, outcome).inc()
        self.metrics.run_seconds.labels(name, action).observe(result.duration)
        rec.tasks = result.progress.as_status()
        rec.last_run_seconds = round(result.duration, 1)
        if result.ok:
            self.expected_tasks[(self.table[name].role or "", action)] = result.progress.started
        summary = (
            f"{result.progress.started} tasks, {result.progress.changed} changed, {result.duration:.1f}s"
        )
        if result.ok and step.action == Action.INSTALL:
            self.drift_due.discard(name)
            rec.digest = step.digest
            rec.attempts = 0
            rec.failed_task = None
            rec.enabled_time = rec.enabled_time or ks_time()
            rec.transition(State.ENABLED)
            if flight.drift:
                if result.progress.changed:
                    log.warning("[%s] drift repaired: %s", name, summary)
                    self._event("Warning", "DriftRepaired", f"{name}: {summary}")
            else:
                log.info("[%s] enabled (%s)", name, summary)
                self._event("Normal", "ComponentEnabled", f"{name} enabled: {summary}")
        elif result.ok:
            rec.digest = None
            rec.attempts = 0
            rec.failed_task = None
            rec.enabled_time = None
            rec.reasons = []
            rec.transition(State.DISABLED)
            log.info("[%s] disabled and removed (%s)", name, summary)
            self._event("Normal", "ComponentDisabled", f"{name} disabled: {summary}")
        elif outcome == CANCELED:
            # The state stays Installing/Disabling: a cut-short run may have left objects, so the
            # next plan uninstalls (or installs) the component from here.
            rec.message = "canceled: the spec changed"
            log.info("[%s] %s canceled: the spec changed", name, action)
        else:
            rec.attempts += 1
            rec.failed_task = result.failed_task
            where = f"task {result.failed_task!r} failed: " if result.failed_task else ""
            message = f"{action} {where}{result.message}"
            rec.transition(State.FAILED, message)
            delay = backoff(rec.attempts, base=self.settings.backoff_base, cap=self.settings.backoff_cap)
            self.retry_at[name] = time.monotonic() + delay
            log.error(
                "[%s] %s failed (attempt %d, retry in %.0fs): %s", name, action, rec.attempts, delay, message
            )
            self._event("Warning", "ComponentFailed", f"{name}: {message}")
        self.metrics.failed_components.set(sum(1 for r in self.records.values() if r.state == State.FAILED))

    # -- reporting ----------------------------------------------------------------------
    def _event(self, kind: str, reason: str, message: str) -> None:
        with self._cc_lock:
            cc = self.cc
        if cc is not None:
            self.kube.post_event(cc, kind=kind, reason=reason, message=message)

    def _conditions(self, plan: Plan | None) -> tuple[tuple[bool, str, str], ...]:
        failed = {n: r for n, r in self.records.items() if r.state == State.FAILED}
        preflight_failed = self.preflight is not None and not self.preflight[1]
        pending = [n for n in (plan.steps if plan else {}) if n not in self.in_flight]
        busy = sorted(self.in_flight)
        if preflight_failed:
            assert self.preflight is not None
            degraded = (True, "PreflightFailed", self.preflight[2])
        elif failed:
            degraded = (
                True,
                "ComponentFailed",
                "; ".join(f"{n}: {r.message}" for n, r in sorted(failed.items())),
            )
        else:
            degraded = (False, "AsExpected", "")
        if busy:
            progressing = (True, "Running", f"running: {', '.join(busy)}")
        elif pending and not failed:
            progressing = (True, "Pending", f"pending: {', '.join(pending)}")
        else:
            progressing = (False, "Idle", "")
        unsupported = sorted(n for n, r in self.records.items() if r.state == State.UNSUPPORTED)
        note = f"; not supported: {', '.join(unsupported)}" if unsupported else ""
        if plan is not None and not plan.steps and not busy and not failed and not preflight_failed:
            enabled = [n for n in plan.desired]
            ready = (True, "AllComponentsEnabled", f"enabled: {', '.join(enabled)}{note}")
        elif failed or preflight_failed:
            ready = (False, "ComponentFailed", degraded[2])
        else:
            ready = (False, "Installing", progressing[2] or "waiting")
        return ready, progressing, degraded

    def write_status(self, *, generation: int | None = None, plan: Plan | None = None) -> None:
        with self._cc_lock:
            cc = self.cc
        if cc is None:
            return
        if generation is None:
            generation = (self.written or {}).get("observedGeneration")
        if plan is None:
            spec = cc.get("spec") or {}
            plan = make_plan(self.table, spec, self._observed(), version=__version__)
        ready, progressing, degraded = self._conditions(plan)
        doc = build_status(
            table=self.table,
            records=self.records,
            generation=generation,
            platform_version=f"v{__version__}",
            installer_version=__version__,
            ready=ready,
            progressing=progressing,
            degraded=degraded,
            previous_conditions=list(self.written.get("conditions") or []),
        )
        was_ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in self.written.get("conditions") or []
        )
        patch = merge_patch(self.written, doc)
        if patch:
            self.kube.patch_status(patch)
            self.written = doc
        if ready[0] and not self.ready_announced:
            self.ready_announced = True
            self._welcome(cc, transition=not was_ready)
        elif not ready[0] and (plan.steps or self.in_flight):
            self.ready_announced = False

    def _welcome(self, cc: dict[str, Any], *, transition: bool) -> None:
        spec = cc.get("spec") or {}
        console = ((spec.get("common") or {}).get("core") or {}).get("console") or {}
        port = int(console.get("port") or 30880)
        address = self.kube.console_address(port)
        enabled = ", ".join(n for n, r in self.records.items() if r.state == State.ENABLED)
        ns = self.kube.namespace
        banner = "\n".join(
            [
                "#" * 78,
                "###              Welcome to KubeSphere!           ###",
                "#" * 78,
                "",
                f"Console: {address}",
                "Account: admin",
                "Password: generated at install time; read it with",
                f"  kubectl -n {ns} get secret kubesphere-secret "
                "-o jsonpath='{.data.initAdminPassword}' | base64 -d; echo",
                "",
                f"Enabled components: {enabled}",
                f"Status:  kubectl -n {ns} get cc {self.kube.name} -o jsonpath='{{.status.components}}'",
                "#" * 78,
            ]
        )
        log.info("all enabled components are ready\n%s", banner)
        if transition:  # a restart that finds everything ready posts nothing
            self._event("Normal", "Ready", f"all enabled components are ready: {enabled}")
