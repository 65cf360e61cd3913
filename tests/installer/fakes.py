"""In-memory stand-ins for what the engine is given: the API, the runner, the clock.

``FakeApi`` holds one ClusterConfiguration, applies status merge patches to it,
records the patches and Events, and raises what a test tells it to.
``FakeRunner`` records every request; a component run waits until the test
finishes it (``run.succeed()``, ``run.fail(...)``) or the engine cancels it,
so a test decides exactly when each run ends.  ``FakeClock`` moves only when
the test advances it.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from installer.runs import CANCELED, ERROR, FAILED, SUCCESSFUL, Progress, RunRequest, RunResult

Obj = dict[str, Any]

#: How long a fake run waits for the test to finish it before giving up (a bug in the test).
RUN_LIMIT = 10.0


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def apply_merge_patch(target: Obj, patch: Obj) -> None:
    """RFC 7386, as the API server applies ``application/merge-patch+json``."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            apply_merge_patch(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeApi:
    """One ClusterConfiguration in memory, with the API surface the engine uses."""

    def __init__(self, spec: Obj, *, status: Obj | None = None) -> None:
        self.namespace = "kubesphere-system"
        self.name = "ks-installer"
        self.cc: Obj = {
            "apiVersion": "installer.kubesphere.io/v1alpha1",
            "kind": "ClusterConfiguration",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": "0f1e2d3c",
                "generation": 1,
                "resourceVersion": "1",
            },
            "spec": copy.deepcopy(spec),
            "status": copy.deepcopy(status or {}),
        }
        #: Status patches the API accepted, and those it answered with an error.
        self.patches: list[Obj] = []
        self.refused: list[Obj] = []
        #: ``(type, reason, message)`` of every Event posted.
        self.events: list[tuple[str, str, str]] = []
        #: Raised by ``patch_status`` while set (how the API server answers the status patch).
        self.refuse: Exception | None = None
        self._watchers: list[queue.Queue[tuple[str, Obj]]] = []
        self._lock = threading.Lock()

    # -- what a user does and sees ---------------------------------------------------------
    def get(self) -> Obj:
        with self._lock:
            return copy.deepcopy(self.cc)

    def change_spec(self, change: Callable[[Obj], None]) -> Obj:
        """Edit the spec as ``kubectl patch`` would: a new generation; returns the new object."""
        with self._lock:
            change(self.cc["spec"])
            self.cc["metadata"]["generation"] += 1
            obj = self._bump()
        return obj

    @property
    def status(self) -> Obj:
        return self.get()["status"]

    def component(self, name: str) -> Obj:
        return dict((self.status.get("components") or {}).get(name) or {})

    def condition(self, kind: str) -> Obj:
        return next((dict(c) for c in self.status.get("conditions") or [] if c["type"] == kind), {})

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]

    # -- the engine's side ---------------------------------------------------------------
    def watch_cc(self, stop: threading.Event) -> Iterator[tuple[str, Obj]]:
        events: queue.Queue[tuple[str, Obj]] = queue.Queue()
        with self._lock:
            self._watchers.append(events)
        yield ("SYNC", self.get())
        while not stop.is_set():
            try:
                yield events.get(timeout=0.01)
            except queue.Empty:
                continue

    def patch_status(self, patch: Obj) -> None:
        with self._lock:
            if self.refuse is not None:
                self.refused.append(copy.deepcopy(patch))
                raise self.refuse
            self.patches.append(copy.deepcopy(patch))
            apply_merge_patch(self.cc.setdefault("status", {}), patch)
            self._bump()

    def post_event(self, cc: Obj, *, kind: str, reason: str, message: str) -> None:
        assert cc["metadata"]["uid"] == self.cc["metadata"]["uid"]
        with self._lock:
            self.events.append((kind, reason, message))

    def console_address(self, port: int) -> str:
        return f"http://192.0.2.10:{port}"

    def _bump(self) -> Obj:
        meta = self.cc["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        obj = copy.deepcopy(self.cc)
        for watcher in self._watchers:
            watcher.put(("MODIFIED", obj))
        return obj


@dataclass
class FakeRun:
    """One component run the engine started; it ends when the test (or a cancel) says."""

    request: RunRequest
    cancel: threading.Event
    on_progress: Callable[[Progress], None] | None
    result: RunResult | None = None
    _outcome: queue.Queue[RunResult] = field(default_factory=queue.Queue)

    @property
    def component(self) -> str:
        return self.request.component

    @property
    def action(self) -> str:
        return self.request.action

    @property
    def spec(self) -> Obj:
        return dict(self.request.variables["ks_spec"])

    def progress(self, started: int, task: str) -> None:
        assert self.on_progress is not None
        self.on_progress(Progress(started=started, expected=self.request.expected_tasks, current_task=task))

    def succeed(
        self, *, tasks: int = 3, changed: int = 1, leftovers: list[dict[str, str]] | None = None
    ) -> None:
        progress = Progress(started=tasks, expected=tasks, ok=tasks, changed=changed)
        result = RunResult(status=SUCCESSFUL, rc=0, progress=progress, duration=0.5)
        result.leftovers = list(leftovers or [])
        self._outcome.put(result)

    def fail(self, task: str = "probe : Probe | Refuse on purpose", message: str = "told to fail") -> None:
        progress = Progress(started=2, ok=1, failed=1, current_task=task)
        result = RunResult(
            status=FAILED, rc=2, progress=progress, duration=0.5, failed_task=task, message=message
        )
        self._outcome.put(result)

    def wait(self) -> RunResult:
        deadline = time.monotonic() + RUN_LIMIT
        while time.monotonic() < deadline:
            try:
                return self._outcome.get(timeout=0.002)
            except queue.Empty:
                if self.cancel.is_set():
                    return RunResult(
                        status=CANCELED, rc=None, progress=Progress(), duration=0.1, message="canceled"
                    )
        return RunResult(
            status=ERROR, rc=None, progress=Progress(), duration=RUN_LIMIT, message="never finished"
        )


class FakeRunner:
    """Records every request; preflight answers at once, component runs when the test says.

    With ``auto`` set, component runs succeed at once (``changed`` tasks changed).
    """

    def __init__(self, *, auto: bool = False) -> None:
        self.auto = auto
        self.changed = 1
        self.preflight_failure: str | None = None
        self.preflights: list[RunRequest] = []
        self.runs: list[FakeRun] = []
        self._started = threading.Condition()

    def run(
        self,
        request: RunRequest,
        *,
        cancel: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> RunResult:
        if request.component == "preflight":
            self.preflights.append(request)
            if self.preflight_failure:
                return RunResult(
                    status=FAILED,
                    rc=2,
                    progress=Progress(started=1, failed=1),
                    duration=0.1,
                    failed_task="preflight : Preflight | Check the spec",
                    message=self.preflight_failure,
                )
            return RunResult(status=SUCCESSFUL, rc=0, progress=Progress(started=1, ok=1), duration=0.1)
        run = FakeRun(request=request, cancel=cancel or threading.Event(), on_progress=on_progress)
        if self.auto:
            run.succeed(changed=self.changed)
        with self._started:
            self.runs.append(run)
            self._started.notify_all()
        run.result = run.wait()
        return run.result

    def started(self, count: int) -> FakeRun:
        """Wait until ``count`` component runs have started; return the last of them."""
        with self._started:
            if not self._started.wait_for(lambda: len(self.runs) >= count, timeout=RUN_LIMIT):
                raise AssertionError(f"{count} runs expected, {len(self.runs)} started: {self.summary()}")
            return self.runs[count - 1]

    def summary(self) -> list[tuple[str, str]]:
        return [(r.component, r.action) for r in self.runs]

    def release(self) -> None:
        """End every run still waiting (at the end of a test)."""
        for run in self.runs:
            run.cancel.set()
