"""Runs in flight: each in a worker thread, reporting back to the loop through queues.

The engine's loop owns every record; a run's thread only calls the runner,
queues what it hears (progress, then the result) and wakes the loop, which
takes the reports in at a point of its choosing (:meth:`InFlightRuns.take`).
A run is cancelled by setting its event: the runner stops the playbook and
answers ``canceled``.  The worker threads are created with the first run, so
an engine that never runs anything owns none.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from installer.planner import Step
from installer.protocols import RoleRunner
from installer.runs import ERROR, Progress, RunRequest, RunResult

log = logging.getLogger("ks-installer")

T = TypeVar("T")


@dataclass
class InFlight:
    step: Step
    generation: int | None
    started: float
    #: A drift check of an Enabled component rather than a planned step.
    drift: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)
    #: Why the run was asked to stop, for its record and the log.
    canceled_because: str = ""
    last_progress_write: float = 0.0

    def stop(self, why: str) -> bool:
        """Ask the run to stop; False when it was asked already."""
        if self.cancel.is_set():
            return False
        self.canceled_because = why
        self.cancel.set()
        return True


class InFlightRuns:
    """The runs in flight by component name, under a cap."""

    def __init__(self, runner: RoleRunner, *, max_parallel: int, wake: Callable[[], None]) -> None:
        self.runner = runner
        self.max_parallel = max(1, max_parallel)
        self.wake = wake
        self.by_name: dict[str, InFlight] = {}
        self._progress: queue.Queue[tuple[str, Progress]] = queue.Queue()
        self._results: queue.Queue[tuple[InFlight, RunResult]] = queue.Queue()
        self._pool: ThreadPoolExecutor | None = None

    def names(self) -> set[str]:
        return set(self.by_name)

    @property
    def full(self) -> bool:
        return len(self.by_name) >= self.max_parallel

    def start(self, flight: InFlight, request: RunRequest) -> None:
        name = flight.step.component
        self.by_name[name] = flight

        def progress(p: Progress) -> None:
            self._progress.put((name, Progress(**vars(p))))
            self.wake()

        def work() -> None:
            try:
                result = self.runner.run(request, cancel=flight.cancel, on_progress=progress)
            except Exception as exc:  # the runner reports its own errors; this is a last resort
                log.exception("[%s] run crashed", name)
                result = RunResult(status=ERROR, rc=None, progress=Progress(), duration=0.0, message=str(exc))
            self._results.put((flight, result))
            self.wake()

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="run")
        self._pool.submit(work)

    def take_progress(self) -> list[tuple[str, Progress]]:
        """Progress reported since the last call, oldest first."""
        return _drain(self._progress)

    def take_results(self) -> list[tuple[InFlight, RunResult]]:
        """Results reported since the last call; their runs are no longer in flight."""
        results = _drain(self._results)
        for flight, _ in results:
            self.by_name.pop(flight.step.component, None)
        return results

    def stop_all(self, why: str) -> None:
        """Cancel every run and wait for their threads to end (their results stay to be taken)."""
        for flight in self.by_name.values():
            flight.stop(why)
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _drain(q: queue.Queue[T]) -> list[T]:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items
