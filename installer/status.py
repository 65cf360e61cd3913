"""The ClusterConfiguration status: per-component records and the document users read.

Two layers share ``status``:

* ks-installer's keys, kept exactly: ``status.<key>.status`` is ``enabled``
  (or ``failed``), ``status.<key>.enabledTime`` uses ks-installer's
  ``%Y-%m-%dT%H:%M:%S%Z`` format, and ``status.core.version``.
* ours: ``status.components.<name>`` (state, message naming the failed task,
  task counters, applied digest and per-input hashes, attempts), ``conditions`` (Ready,
  Progressing, Degraded) with ``observedGeneration``, and a one-line summary.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from installer.components import ComponentTable
from installer.planner import State
from kubesphere.resources import now_rfc3339

CONDITION_TYPES = ("Ready", "Progressing", "Degraded")


def ks_time() -> str:
    """ks-installer's enabledTime format (``date +%Y-%m-%dT%H:%M:%S%Z``)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SUTC")


@dataclass
class ComponentRecord:
    state: State = State.PENDING
    digest: str | None = None
    action: str | None = None
    message: str = ""
    failed_task: str | None = None
    attempts: int = 0
    tasks: dict[str, int] = field(default_factory=dict)
    enabled_time: str | None = None
    last_transition: str = field(default_factory=now_rfc3339)
    last_run_seconds: float | None = None
    reasons: list[str] = field(default_factory=list)
    #: Per-input hashes of the last successful install (``appliedInputs``; hashes, never values).
    applied_inputs: dict[str, str] = field(default_factory=dict)
    #: What the last uninstall or prune could not remove, each with its reason.
    leftovers: list[dict[str, str]] = field(default_factory=list)

    def transition(self, state: State, message: str = "") -> bool:
        changed = state != self.state
        if changed:
            self.state = state
            self.last_transition = now_rfc3339()
        self.message = message
        return changed

    def as_status(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "state": str(self.state),
            "lastTransitionTime": self.last_transition,
        }
        optional = {
            "message": self.message or None,
            "failedTask": self.failed_task,
            "appliedDigest": self.digest,
            "appliedInputs": self.applied_inputs or None,
            "action": self.action,
            "attempts": self.attempts or None,
            "tasks": self.tasks or None,
            "lastRunSeconds": self.last_run_seconds,
            "reason": "; ".join(self.reasons) or None,
        }
        doc.update({k: v for k, v in optional.items() if v is not None})
        if self.leftovers:
            doc["leftovers"] = self.leftovers
        return doc

    @classmethod
    def from_status(cls, doc: dict[str, Any], ks: dict[str, Any] | None) -> ComponentRecord:
        try:
            state = State(doc.get("state", State.PENDING))
        except ValueError:
            state = State.PENDING
        return cls(
            state=state,
            digest=doc.get("appliedDigest"),
            applied_inputs={str(k): str(v) for k, v in (doc.get("appliedInputs") or {}).items()},
            action=doc.get("action"),
            message=doc.get("message", ""),
            failed_task=doc.get("failedTask"),
            attempts=int(doc.get("attempts") or 0),
            tasks=dict(doc.get("tasks") or {}),
            enabled_time=(ks or {}).get("enabledTime"),
            last_transition=doc.get("lastTransitionTime") or now_rfc3339(),
            last_run_seconds=doc.get("lastRunSeconds"),
            leftovers=[x for x in doc.get("leftovers") or [] if isinstance(x, dict)],
        )


def load_records(table: ComponentTable, status: dict[str, Any]) -> dict[str, ComponentRecord]:
    """Records from an existing status, so a restarted operator resumes where it was."""
    components = status.get("components") or {}
    records = {}
    for c in table:
        if c.name in components:
            ks = status.get(c.key)
            records[c.name] = ComponentRecord.from_status(
                components[c.name], ks if isinstance(ks, dict) else None
            )
    return records


def condition(
    kind: str, ok: bool, reason: str, message: str, generation: int | None, previous: list[dict[str, Any]]
) -> dict[str, Any]:
    status = "True" if ok else "False"
    old = next((c for c in previous if c.get("type") == kind), None)
    since = old["lastTransitionTime"] if old and old.get("status") == status else now_rfc3339()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


def build_status(
    *,
    table: ComponentTable,
    records: dict[str, ComponentRecord],
    generation: int | None,
    platform_version: str,
    installer_version: str,
    ready: tuple[bool, str, str],
    progressing: tuple[bool, str, str],
    degraded: tuple[bool, str, str],
    previous_conditions: list[dict[str, Any]],
    paused: tuple[bool, str, str] = (False, "NotPaused", ""),
) -> dict[str, Any]:
    """The full status document (ks-installer keys plus ours)."""
    doc: dict[str, Any] = {}
    for c in table:
        rec = records.get(c.name)
        if rec is None:
            continue
        if rec.enabled_time and rec.state in (State.ENABLED, State.INSTALLING, State.FAILED):
            ks: dict[str, Any] = {
                "status": "failed" if rec.state == State.FAILED else "enabled",
                "enabledTime": rec.enabled_time,
            }
            doc[c.key] = ks
        elif rec.state == State.FAILED:
            doc[c.key] = {"status": "failed"}
    core = records.get("core")
    if core and core.enabled_time and core.state in (State.ENABLED, State.INSTALLING):
        doc.setdefault("core", {})["version"] = platform_version
    doc["components"] = {name: rec.as_status() for name, rec in records.items()}
    doc["conditions"] = [
        condition("Ready", *ready, generation, previous_conditions),
        condition("Progressing", *progressing, generation, previous_conditions),
        condition("Degraded", *degraded, generation, previous_conditions),
        condition("Paused", *paused, generation, previous_conditions),
    ]
    doc["observedGeneration"] = generation
    doc["installerVersion"] = installer_version
    active = [r for r in records.values() if r.state not in (State.DISABLED, State.UNSUPPORTED)]
    enabled = [r for r in active if r.state == State.ENABLED]
    doc["summary"] = f"{len(enabled)}/{len(active)} enabled"
    return doc


def managed_keys(table: ComponentTable) -> set[str]:
    """Status keys this installer owns; anything else in status is left alone."""
    return {c.key for c in table} | {
        "components",
        "conditions",
        "observedGeneration",
        "installerVersion",
        "summary",
    }


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch turning ``old`` into ``new`` (empty when equal)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif value != before:
            patch[key] = value
    return patch
