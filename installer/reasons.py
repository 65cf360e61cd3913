"""Why each step of a plan runs, in words a user can check against the spec: pure logic.

An install says what it starts from (``not installed``, ``last install failed``, an
interrupted run) or, for an Enabled component, which of its inputs differ from the ones
its last successful install recorded (``spec.devops changed``, ``needs openldap, which
changes``, ``installer version changed``).  The inputs are compared by their short
hashes (:func:`installer.planner.component_inputs`), so the reasons never hold a value.
An uninstall names the switch that turned the component off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from installer.components import ComponentTable
from installer.planner import Action, Observed, Plan, State

_STARTS = {
    State.PENDING: "not installed",
    State.DISABLED: "not installed",
    State.FAILED: "last run failed",
    State.INSTALLING: "an install is running or did not finish",
    State.DISABLING: "an uninstall is running or did not finish",
}


def changed_inputs(applied: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """The input keys whose hash differs (or that one side lacks), sorted."""
    return sorted(k for k in applied.keys() | current.keys() if applied.get(k) != current.get(k))


def describe_input(key: str, plan: Plan) -> str:
    if key.startswith("needs."):
        need = key.removeprefix("needs.")
        step = plan.steps.get(need)
        return f"needs {need}, which {'re-runs' if step else 'changed'}"
    if key == "installer":
        return "installer version changed"
    if key == "role":
        return "role changed"
    return f"{key} changed"


def install_reasons(name: str, plan: Plan, seen: Observed) -> list[str]:
    if seen.state != State.ENABLED:
        return [_STARTS.get(seen.state, str(seen.state))]
    current = plan.inputs.get(name, {})
    if seen.inputs is None:
        return ["inputs changed since the last install (which recorded no per-input hashes)"]
    keys = changed_inputs(seen.inputs, current)
    # The needs' own changes show up as spec paths too; list the component's own inputs first.
    own = [k for k in keys if not k.startswith("needs.")]
    needs = [k for k in keys if k.startswith("needs.")]
    return [describe_input(k, plan) for k in own + needs] or ["digest differs"]


def uninstall_reasons(table: ComponentTable, name: str, spec: dict[str, Any]) -> list[str]:
    c = table[name]
    if not c.supported:
        return ["no longer installed by this installer"]
    if isinstance(c.enabled, str):
        return [f"switched off in spec ('{c.enabled}' is false) and no enabled component needs it"]
    return ["installed only when needed, and no enabled component needs it now"]


def step_reasons(
    table: ComponentTable, spec: dict[str, Any], plan: Plan, observed: Mapping[str, Observed]
) -> dict[str, list[str]]:
    """Per planned step, why it runs."""
    none = Observed(State.PENDING)
    out: dict[str, list[str]] = {}
    for name, step in plan.steps.items():
        if step.action == Action.INSTALL:
            out[name] = install_reasons(name, plan, observed.get(name, none))
        else:
            out[name] = uninstall_reasons(table, name, spec)
    return out


def summary_line(plan: Plan, reasons: Mapping[str, list[str]]) -> str:
    """``install devops (not installed; enabled in spec), uninstall minio (switched off …)``."""
    parts = []
    for name, step in plan.steps.items():
        why = list(reasons.get(name, []))
        if step.action == Action.INSTALL:
            why += plan.desired.get(name, [])
        parts.append(f"{step.action} {name} ({'; '.join(why)})")
    return ", ".join(parts)
