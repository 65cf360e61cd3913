"""Preflight: the table's validation role, run once per spec generation before any change.

Cross-field rules a schema cannot express, and what the cluster must offer, are
checked by a role (``preflightRole`` in the component table).  The engine asks
:meth:`Preflight.check` before it starts any run; a spec that fails is not acted
on (``Degraded=PreflightFailed`` names why) and is checked again after a
backoff, or at once when the spec changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from installer.protocols import Clock, EventSink, RoleRunner
from installer.records import backoff
from installer.runs import RunRequest

log = logging.getLogger("ks-installer")

#: Builds the preflight run's request for a spec.
RequestFor = Callable[[dict[str, Any]], RunRequest]


@dataclass(frozen=True)
class Verdict:
    generation: int | None
    passed: bool
    message: str = ""


class Preflight:
    def __init__(
        self,
        *,
        role: str | None,
        runner: RoleRunner,
        request_for: RequestFor,
        event: EventSink,
        clock: Clock,
        backoff_base: float,
        backoff_cap: float,
    ) -> None:
        self.role = role
        self.runner = runner
        self.request_for = request_for
        self.event = event
        self.clock = clock
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.verdict: Verdict | None = None
        self.attempts = 0
        #: When a failed preflight is run again for the same generation (on ``clock``).
        self.retry_at: float | None = None

    @property
    def failure(self) -> str | None:
        """Why the last preflight refused the spec, or None when it passed (or never ran)."""
        if self.verdict is None or self.verdict.passed:
            return None
        return self.verdict.message

    def check(self, spec: dict[str, Any], generation: int | None) -> bool:
        """True when the spec of ``generation`` may be acted on; runs the role when due.

        The run is synchronous: nothing else starts until the spec is known good.
        """
        if not self.role:
            return True
        if self.verdict and self.verdict.generation == generation:
            if self.verdict.passed:
                return True
            if self.retry_at is not None and self.retry_at > self.clock():
                return False  # failed for this spec; retried after its backoff
        log.info("[preflight] checking the spec and the cluster before any change")
        result = self.runner.run(self.request_for(spec))
        if result.ok:
            self.verdict = Verdict(generation, True)
            self.attempts = 0
            self.retry_at = None
            return True
        message = (
            f"task {result.failed_task!r}: {result.message}" if result.failed_task else str(result.message)
        )
        self.attempts += 1
        self.verdict = Verdict(generation, False, message)
        self.retry_at = self.clock() + backoff(self.attempts, base=self.backoff_base, cap=self.backoff_cap)
        log.error("[preflight] failed, nothing was changed: %s", message)
        self.event("Warning", "PreflightFailed", message)
        return False
