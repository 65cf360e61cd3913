"""What the engine tells users: the status it writes, its conditions, the Welcome banner.

:func:`conditions` derives ``Ready``, ``Progressing``, ``Degraded`` and ``Paused``
from the records, the plan, the runs in flight, preflight and the pause annotations.  :class:`StatusWriter`
builds the status document (:func:`installer.status.build_status`) and patches
only what changed since the last write.  A patch the API server refuses for good
(:class:`installer.errors.PermanentError`: 400, 403, 422) is logged, reported in
one Warning Event and not sent again until the document changes; reconciling
goes on.  When everything enabled is ready it logs the Welcome banner, and
posts a ``Ready`` Event on the transition (a restart that finds everything
ready posts nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from installer import __version__
from installer.components import ComponentTable
from installer.errors import PermanentError
from installer.pause import NO_PAUSE, Pause
from installer.planner import Plan, State
from installer.protocols import ClusterApi, EventSink
from installer.status import ComponentRecord, build_status, managed_keys, merge_patch

log = logging.getLogger("ks-installer")

#: ``(status, reason, message)`` of one condition.
Condition = tuple[bool, str, str]


def conditions(
    *,
    records: dict[str, ComponentRecord],
    plan: Plan,
    busy: Collection[str],
    preflight_failure: str | None,
    pause: Pause = NO_PAUSE,
) -> tuple[Condition, Condition, Condition, Condition]:
    """``(ready, progressing, degraded, paused)`` for the status."""
    failed = {n: r for n, r in records.items() if r.state == State.FAILED}
    held = sorted(n for n in plan.steps if n not in busy and pause.holds(n))
    pending = [n for n in plan.steps if n not in busy and n not in held]
    running = sorted(busy)
    degraded: Condition
    if preflight_failure is not None:
        degraded = (True, "PreflightFailed", preflight_failure)
    elif failed:
        degraded = (
            True,
            "ComponentFailed",
            "; ".join(f"{n}: {r.message}" for n, r in sorted(failed.items())),
        )
    else:
        degraded = (False, "AsExpected", "")
    progressing: Condition
    if running:
        progressing = (True, "Running", f"running: {', '.join(running)}")
    elif pending and not failed:
        progressing = (True, "Pending", f"pending: {', '.join(pending)}")
    elif held:
        progressing = (False, "Paused", f"held: {', '.join(held)}")
    else:
        progressing = (False, "Idle", "")
    paused: Condition = (False, "NotPaused", "")
    if pause:
        what = f"paused for {pause.describe()}"
        paused = (True, "Paused", f"{what}; held: {', '.join(held)}" if held else f"{what}; nothing held")
    unsupported = sorted(n for n, r in records.items() if r.state == State.UNSUPPORTED)
    note = f"; not supported: {', '.join(unsupported)}" if unsupported else ""
    ready: Condition
    if not plan.steps and not running and not degraded[0]:
        ready = (True, "AllComponentsEnabled", f"enabled: {', '.join(plan.desired)}{note}")
    elif degraded[0]:
        ready = (False, "ComponentFailed", degraded[2])
    elif held and not running and not pending:
        ready = (False, "Paused", paused[2])
    else:
        ready = (False, "Installing", progressing[2] or "waiting")
    return ready, progressing, degraded, paused


def welcome_banner(*, console: str, namespace: str, name: str, enabled: list[str]) -> str:
    return "\n".join(
        [
            "#" * 78,
            "###              Welcome to KubeSphere!           ###",
            "#" * 78,
            "",
            f"Console: {console}",
            "Account: admin",
            "Password: generated at install time; read it with",
            f"  kubectl -n {namespace} get secret kubesphere-secret "
            "-o jsonpath='{.data.initAdminPassword}' | base64 -d; echo",
            "",
            f"Enabled components: {', '.join(enabled)}",
            f"Status:  kubectl -n {namespace} get cc {name} -o jsonpath='{{.status.components}}'",
            "#" * 78,
        ]
    )


class StatusWriter:
    """Writes the status of one ClusterConfiguration; remembers what it last wrote."""

    def __init__(self, *, api: ClusterApi, table: ComponentTable, event: EventSink) -> None:
        self.api = api
        self.table = table
        self.event = event
        #: The managed part of the status as last written (or found at start).
        self.written: dict[str, Any] = {}
        #: The last document the API server refused for good, while it stays unwritten.
        self.refused: dict[str, Any] | None = None
        self._refusal_reported = False
        self.ready_announced = False

    def adopt(self, live: dict[str, Any]) -> None:
        """Start from the status found on the object, so an unchanged one is not rewritten."""
        if not self.written:
            self.written = {k: v for k, v in live.items() if k in managed_keys(self.table)}

    @property
    def generation(self) -> int | None:
        """The generation the last written status describes."""
        gen = self.written.get("observedGeneration")
        return gen if isinstance(gen, int) else None

    def write(
        self,
        cc: dict[str, Any],
        *,
        records: dict[str, ComponentRecord],
        plan: Plan,
        generation: int | None,
        busy: Collection[str],
        preflight_failure: str | None,
        pause: Pause = NO_PAUSE,
    ) -> None:
        ready, progressing, degraded, paused = conditions(
            records=records, plan=plan, busy=busy, preflight_failure=preflight_failure, pause=pause
        )
        doc = build_status(
            table=self.table,
            records=records,
            generation=generation,
            platform_version=f"v{__version__}",
            installer_version=__version__,
            ready=ready,
            progressing=progressing,
            degraded=degraded,
            paused=paused,
            # After a refusal, keep the refused document's transition times, so an unchanged
            # status builds the same document again and is not re-sent.
            previous_conditions=list((self.refused or self.written).get("conditions") or []),
        )
        was_ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in self.written.get("conditions") or []
        )
        patch = merge_patch(self.written, doc)
        if not patch:
            self.refused = None
        elif doc != self.refused:
            try:
                self.api.patch_status(patch)
            except PermanentError as exc:
                self._refuse(doc, patch, exc)
            else:
                self.written, self.refused, self._refusal_reported = doc, None, False
        if ready[0] and not self.ready_announced:
            self.ready_announced = True
            self._welcome(cc, records, transition=not was_ready)
        elif not ready[0] and (plan.steps or busy):
            self.ready_announced = False

    def _refuse(self, doc: dict[str, Any], patch: dict[str, Any], exc: PermanentError) -> None:
        self.refused = doc
        # The answer, not the document: the fields say where to look, the status holds the rest.
        answer = str(exc)[:500]
        log.error(
            "[status] the API server refused the status update of %s (not sent again until it changes): %s",
            ", ".join(sorted(patch)),
            answer,
        )
        if not self._refusal_reported:
            self._refusal_reported = True
            self.event("Warning", "StatusRejected", f"the API server refused the status update: {answer}")

    def _welcome(self, cc: dict[str, Any], records: dict[str, ComponentRecord], *, transition: bool) -> None:
        spec = cc.get("spec") or {}
        console = ((spec.get("common") or {}).get("core") or {}).get("console") or {}
        enabled = [n for n, r in records.items() if r.state == State.ENABLED]
        banner = welcome_banner(
            console=self.api.console_address(int(console.get("port") or 30880)),
            namespace=self.api.namespace,
            name=self.api.name,
            enabled=enabled,
        )
        log.info("all enabled components are ready\n%s", banner)
        if transition:  # a restart that finds everything ready posts nothing
            self.event("Normal", "Ready", f"all enabled components are ready: {', '.join(enabled)}")
