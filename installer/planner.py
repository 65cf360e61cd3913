"""From spec and observed state to what must run: pure logic, no I/O.

* The **desired set** is every supported component whose switch is on, plus,
  transitively, every component an enabled one needs.
* A component's **digest** covers the spec paths it reads, the table's global
  inputs, the installer version and the digests of the components it needs,
  so a change to a dependency re-runs its dependents too.  Beside it, each
  input's own short hash (:func:`component_inputs`; hashes, never values) is
  recorded when an install succeeds, so a later plan can say which input
  changed (:mod:`installer.reasons`).
* A desired component **installs** when its applied digest differs from the
  current one or it is not ``Enabled``; a component that is no longer desired
  and may have left objects behind **uninstalls**.
* Installs wait for what they need; uninstalls wait for their dependents'
  uninstalls (reverse order).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from installer.components import ComponentTable
from installer.expressions import evaluate, lookup


class State(StrEnum):
    PENDING = "Pending"
    INSTALLING = "Installing"
    ENABLED = "Enabled"
    FAILED = "Failed"
    DISABLING = "Disabling"
    DISABLED = "Disabled"
    UNSUPPORTED = "Unsupported"


class Action(StrEnum):
    INSTALL = "install"
    UNINSTALL = "uninstall"


#: States after which a component may have objects in the cluster.
MAY_HAVE_OBJECTS = {State.INSTALLING, State.ENABLED, State.FAILED, State.DISABLING}


@dataclass(frozen=True)
class Observed:
    """What the status says about one component."""

    state: State
    digest: str | None = None
    action: Action | None = None
    #: Per-input hashes of the last successful install (``None``: not recorded).
    inputs: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Step:
    component: str
    action: Action
    digest: str | None
    #: Components whose step must finish successfully first.
    after: frozenset[str]
    #: Per-input hashes of an install (what the record keeps once it succeeds).
    inputs: tuple[tuple[str, str], ...] = ()


@dataclass
class Plan:
    desired: dict[str, list[str]]
    digests: dict[str, str]
    steps: dict[str, Step] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    #: Per-input hashes of every desired component (see :func:`component_inputs`).
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.steps


def desired_components(table: ComponentTable, spec: dict[str, Any]) -> dict[str, list[str]]:
    """Desired components with why each one is wanted (``spec`` or ``needed by X``)."""
    reasons: dict[str, list[str]] = {}

    def want(name: str, reason: str) -> None:
        first = name not in reasons
        reasons.setdefault(name, []).append(reason)
        if first:
            for need in table[name].needs:
                if evaluate(need.when, spec):
                    want(need.name, f"needed by {name}")

    for c in table:
        if c.supported and evaluate(c.enabled, spec):
            want(c.name, "enabled in spec")
    return {name: reasons[name] for name in table.topological_order() if name in reasons}


def unsupported_enabled(table: ComponentTable, spec: dict[str, Any]) -> list[str]:
    return [c.name for c in table if not c.supported and evaluate(c.enabled, spec)]


def active_needs(table: ComponentTable, name: str, spec: dict[str, Any]) -> list[str]:
    return [n.name for n in table[name].needs if evaluate(n.when, spec)]


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def component_digests(table: ComponentTable, spec: dict[str, Any], *, version: str) -> dict[str, str]:
    digests: dict[str, str] = {}
    for name in table.topological_order():
        c = table[name]
        material = {
            "version": version,
            "component": name,
            "role": c.role,
            "inputs": {p: lookup(spec, p) for p in (*table.global_inputs, *c.inputs)},
            "needs": {n: digests[n] for n in active_needs(table, name, spec)},
        }
        digests[name] = hashlib.sha256(_canonical(material)).hexdigest()[:16]
    return digests


def _short_hash(material: Any) -> str:
    return hashlib.sha256(_canonical(material)).hexdigest()[:12]


def component_inputs(
    table: ComponentTable, spec: dict[str, Any], digests: Mapping[str, str], *, version: str
) -> dict[str, dict[str, str]]:
    """Per component, one short hash per input: ``spec.<path>``, ``installer``, ``role`` and
    ``needs.<component>`` (that component's digest).  Only hashes: the spec may hold secrets.
    Each hash covers the component and the path too, so equal values hash differently."""
    out: dict[str, dict[str, str]] = {}
    for name in table.topological_order():
        c = table[name]
        hashes = {
            f"spec.{p}": _short_hash({"component": name, "path": p, "value": lookup(spec, p)})
            for p in (*table.global_inputs, *c.inputs)
        }
        hashes["installer"] = _short_hash({"component": name, "version": version})
        hashes["role"] = _short_hash({"component": name, "role": c.role})
        hashes.update({f"needs.{n}": digests[n] for n in active_needs(table, name, spec)})
        out[name] = hashes
    return out


def make_plan(
    table: ComponentTable,
    spec: dict[str, Any],
    observed: dict[str, Observed],
    *,
    version: str,
) -> Plan:
    desired = desired_components(table, spec)
    digests = component_digests(table, spec, version=version)
    plan = Plan(desired=desired, digests=digests, unsupported=unsupported_enabled(table, spec))
    plan.inputs = {
        n: h for n, h in component_inputs(table, spec, digests, version=version).items() if n in desired
    }
    none = Observed(State.PENDING)

    for name in desired:
        seen = observed.get(name, none)
        if seen.state == State.ENABLED and seen.digest == digests[name]:
            continue
        plan.steps[name] = Step(
            component=name,
            action=Action.INSTALL,
            digest=digests[name],
            after=frozenset(active_needs(table, name, spec)),
            inputs=tuple(sorted(plan.inputs[name].items())),
        )

    leaving = [
        name
        for name in table.names
        if name not in desired and observed.get(name, none).state in MAY_HAVE_OBJECTS
    ]
    for name in leaving:
        # Dependents (by any declared need, active or not) leave first.
        dependents = {c.name for c in table if c.name in leaving and any(n.name == name for n in c.needs)}
        plan.steps[name] = Step(
            component=name, action=Action.UNINSTALL, digest=None, after=frozenset(dependents)
        )
    return plan


def runnable(plan: Plan, *, done: set[str], running: set[str], blocked: set[str]) -> list[Step]:
    """Steps whose prerequisites are met: each ``after`` entry is done or has no step."""
    ready = []
    for name, step in plan.steps.items():
        if name in done or name in running or name in blocked:
            continue
        if all(dep in done or dep not in plan.steps for dep in step.after):
            ready.append(step)
    return ready
