"""``ks-installer plan``: what a spec would do, shown before anything changes.

The component level is the operator's own plan (:func:`installer.planner.make_plan`)
for the given spec against the live status, with the reasons of
:mod:`installer.reasons`.  The object level comes from check runs: each step's role
runs as the operator would run it, with ``--check --diff``, so every action of our
collection asks the API server for a dry run and reports its objects in its task
result's ``results`` (``{apiVersion, kind, name, namespace?, method, fields?,
reason?}``; ``fields`` are paths, never values).  An uninstall whose check run reports
no removals lists the objects its inventory ConfigMap records, as ``deleted``.

Components the pause annotations hold (:mod:`installer.pause`) are planned all the same and
marked ``held``: that is what would run once the annotation goes, from the spec as it is then.

Nothing here writes to the cluster: check runs are dry runs, and the status, the
inventory and the ClusterConfiguration are only read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from installer import __version__
from installer.components import ComponentTable
from installer.errors import InstallerError
from installer.pause import pause_of
from installer.planner import Action, Observed, Plan, make_plan
from installer.reasons import step_reasons
from installer.roles import PREFLIGHT, PREFLIGHT_ACTION, run_request
from installer.runs import RunRequest, RunResult
from installer.status import load_records

#: The keys of a task result's ``results`` entry a plan shows (and the only ones it keeps).
ENTRY_KEYS = ("apiVersion", "kind", "namespace", "name", "method", "fields", "reason")
#: Our collection's actions: any of them that returns ``results`` in check mode is read.
COLLECTION = "kubesphere.installer."
#: What the common namespace task says when check mode must leave a namespace's objects out.
NOTE_PREFIX = "Check mode:"
INVENTORY_KEY = "objects.json"
#: The fact a check run's apply tasks collect their results in; playbooks/install.yml shows it
#: at the end of the run, since a task with ``no_log`` (a Secret's) has its own result hidden.
CHECKED_FACT = "ks_checked_objects"


def inventory_name(component: str) -> str:
    """The ConfigMap (in the ClusterConfiguration's namespace) that records a component's objects."""
    return f"ks-installer-inventory-{component}"


@dataclass
class ComponentPreview:
    name: str
    action: str
    why: list[str]
    #: Why the spec wants the component (``enabled in spec``, ``needed by devops``); installs only.
    wanted: list[str] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The check run failed: its objects are not known.
    error: str | None = None
    #: A pause annotation holds this run until it goes.
    held: bool = False


@dataclass
class Preview:
    namespace: str
    name: str
    generation: int | None
    source: str
    components: list[ComponentPreview]
    up_to_date: list[str]
    unsupported: list[str]
    preflight_error: str | None = None
    objects_checked: bool = True
    #: What the pause annotations hold (:meth:`installer.pause.Pause.describe`), if any.
    paused: str | None = None

    @property
    def complete(self) -> bool:
        return self.preflight_error is None and all(c.error is None for c in self.components)

    def as_json(self) -> dict[str, Any]:
        return {
            "clusterConfiguration": {
                "namespace": self.namespace,
                "name": self.name,
                "generation": self.generation,
            },
            "source": self.source,
            "objectsChecked": self.objects_checked,
            "preflight": {"ok": self.preflight_error is None, "message": self.preflight_error},
            "paused": self.paused,
            "components": [asdict(c) for c in self.components],
            "upToDate": self.up_to_date,
            "unsupported": self.unsupported,
        }


def observed_from_status(table: ComponentTable, status: Mapping[str, Any]) -> dict[str, Observed]:
    """What the live status says of each component, as the engine's records would after a restart."""
    out = {}
    for name, rec in load_records(table, dict(status)).items():
        action = Action(rec.action) if rec.action in ("install", "uninstall") else None
        out[name] = Observed(rec.state, rec.digest, action, inputs=rec.applied_inputs or None)
    return out


def entries_of(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The object entries an event reports (contract keys only): the ``results`` of a task of
    our collection's actions (each item's, for a loop), or the run's closing report of the
    :data:`CHECKED_FACT` fact."""
    if event.get("event") not in ("runner_on_ok", "runner_item_on_ok"):
        return []
    data = event.get("event_data") or {}
    res = data.get("res") or {}
    action = str(data.get("resolved_action") or data.get("task_action") or "")
    results = res.get("results") if action.startswith(COLLECTION) else res.get(CHECKED_FACT)
    if not isinstance(results, list):
        return []
    return [
        {k: r[k] for k in ENTRY_KEYS if r.get(k) is not None}
        for r in results
        if isinstance(r, dict) and r.get("kind") and r.get("method")
    ]


def note_of(event: Mapping[str, Any]) -> str | None:
    """What a role says check mode leaves out (a debug message starting ``Check mode:``)."""
    if event.get("event") != "runner_on_ok":
        return None
    data = event.get("event_data") or {}
    msg = (data.get("res") or {}).get("msg")
    return msg if isinstance(msg, str) and msg.startswith(NOTE_PREFIX) else None


def _key(entry: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (
        str(entry.get("apiVersion", "")),
        str(entry.get("kind", "")),
        str(entry.get("namespace", "")),
        str(entry.get("name", "")),
    )


#: When one object is reported twice in a run, the stronger word wins.
_WEIGHT = {"unchanged": 0, "absent": 0, "kept": 1, "patched": 2, "changed": 2, "created": 3, "deleted": 4}


def merge_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per object, in first-seen order; changed fields of repeated reports combined."""
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for entry in entries:
        key = _key(entry)
        seen = out.get(key)
        if seen is None:
            out[key] = dict(entry)
            continue
        fields = sorted({*seen.get("fields", []), *entry.get("fields", [])})
        if _WEIGHT.get(entry["method"], 1) > _WEIGHT.get(seen["method"], 1):
            seen.update(entry)
        if fields:
            seen["fields"] = fields
    return list(out.values())


def inventory_entries(doc: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The objects an inventory ConfigMap records, each as an entry that would be deleted."""
    raw = ((doc or {}).get("data") or {}).get(INVENTORY_KEY)
    try:
        refs = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [
        {
            **{k: r[k] for k in ("apiVersion", "kind", "namespace", "name") if r.get(k)},
            "method": "deleted",
            "reason": "recorded in the component's inventory",
        }
        for r in refs
        if isinstance(r, dict) and r.get("kind") and r.get("name")
    ]


class CheckRunner(Protocol):
    """Runs a role and shows each event as it arrives (:class:`installer.runs.Runner`)."""

    def run(
        self, request: RunRequest, *, on_event: Callable[[dict[str, Any]], None] | None = None
    ) -> RunResult: ...


@dataclass
class CheckRun:
    """One check run's outcome: its object entries, notes, and why it failed."""

    entries: list[dict[str, Any]]
    notes: list[str]
    error: str | None


def check_run(runner: CheckRunner, request: RunRequest) -> CheckRun:
    entries: list[dict[str, Any]] = []
    notes: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        entries.extend(entries_of(event))
        note = note_of(event)
        if note and note not in notes:
            notes.append(note)

    result: RunResult = runner.run(request, on_event=on_event)
    error = None
    if not result.ok:
        where = f"task {result.failed_task!r}: " if result.failed_task else ""
        error = f"check run {result.status}: {where}{result.message or ''}".strip()
    return CheckRun(merge_entries(entries), notes, error)


def annotations_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def preview(
    *,
    table: ComponentTable,
    runner: CheckRunner | None,
    live: Mapping[str, Any],
    cc: Mapping[str, Any],
    namespace: str,
    name: str,
    run_timeout: float,
    source: str,
    read_inventory: Callable[[str], Mapping[str, Any] | None],
    parallel: int = 2,
) -> Preview:
    """The plan for ``cc``'s spec against ``live``'s status; with a ``runner``, its objects too.
    The pause is ``live``'s annotations with ``cc``'s over them (what an apply of ``cc`` leaves)."""
    spec = dict(cc.get("spec") or {})
    observed = observed_from_status(table, live.get("status") or {})
    plan: Plan = make_plan(table, spec, observed, version=__version__)
    reasons = step_reasons(table, spec, plan, observed)
    pause = pause_of({"metadata": {"annotations": {**annotations_of(live), **annotations_of(cc)}}})
    components = [
        ComponentPreview(
            name=n,
            action=str(step.action),
            why=reasons[n],
            wanted=list(plan.desired.get(n, [])) if step.action == Action.INSTALL else [],
            held=pause.holds(n),
        )
        for n, step in plan.steps.items()
    ]
    out = Preview(
        namespace=namespace,
        name=name,
        generation=(live.get("metadata") or {}).get("generation"),
        source=source,
        components=components,
        up_to_date=[n for n in plan.desired if n not in plan.steps],
        unsupported=list(plan.unsupported),
        objects_checked=runner is not None,
        paused=pause.describe() if pause else None,
    )
    if runner is None or not components:
        return out

    def request(component: str, action: str) -> RunRequest:
        return run_request(
            table,
            component,
            action,
            spec,
            namespace=namespace,
            name=name,
            run_timeout=run_timeout,
            desired=plan.desired,
            check=True,
        )

    if table.preflight_role:
        pre = check_run(runner, request(PREFLIGHT, PREFLIGHT_ACTION))
        if pre.error:
            out.preflight_error = pre.error
            return out  # the operator would change nothing for this spec
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        runs = {c.name: pool.submit(check_run, runner, request(c.name, c.action)) for c in components}
        for c in components:
            run = runs[c.name].result()
            c.objects, c.notes, c.error = run.entries, run.notes, run.error
            removing = any(e["method"] in ("deleted", "kept") for e in c.objects)
            if c.action == str(Action.UNINSTALL) and not removing:
                try:
                    recorded = inventory_entries(read_inventory(c.name))
                except InstallerError as exc:
                    c.notes.append(f"inventory not read: {exc}")
                    recorded = []
                c.objects = merge_entries([*c.objects, *recorded])
    return out


# -- output ---------------------------------------------------------------------------------
_MARK = {"created": "+", "changed": "~", "patched": "~", "deleted": "-", "kept": "!"}


def _where(entry: Mapping[str, Any]) -> str:
    ns = f"{entry['namespace']}/" if entry.get("namespace") else ""
    return f"{entry.get('kind')} {ns}{entry.get('name')}"


def format_preview(p: Preview) -> str:
    """The plan as text, grouped by component: action and why, then its object changes."""
    lines = [f"Plan for ClusterConfiguration {p.namespace}/{p.name} ({p.source}):"]
    if p.preflight_error:
        lines.append(f"  preflight refuses the spec, nothing would change: {p.preflight_error}")
    if not p.components:
        lines.append(f"  nothing to do: {len(p.up_to_date)} components up to date")
    elif p.paused:
        lines.append(f"  paused for {p.paused}: what is held runs once the annotation goes")
    for c in p.components:
        why = "; ".join([*c.why, *c.wanted])
        lines.append("")
        lines.append(f"{c.action} {c.name}{' (held: paused)' if c.held else ''}: {why}")
        unchanged = 0
        for entry in c.objects:
            mark = _MARK.get(entry["method"])
            if mark is None:
                unchanged += 1
                continue
            detail = ""
            if entry.get("fields"):
                detail = ": " + ", ".join(entry["fields"])
            elif entry.get("reason"):
                detail = f" ({entry['reason']})"
            lines.append(f"  {mark} {_where(entry)}{detail}")
        if unchanged:
            lines.append(f"  = {unchanged} unchanged")
        for note in c.notes:
            lines.append(f"  note: {note}")
        if c.error:
            lines.append(f"  objects unknown: {c.error}")
        elif p.objects_checked and not p.preflight_error and not c.objects:
            lines.append("  no objects reported")
    if p.components and p.up_to_date:
        lines.append("")
        lines.append(f"up to date: {', '.join(p.up_to_date)}")
    if p.unsupported:
        lines.append(f"enabled but not supported by this installer: {', '.join(p.unsupported)}")
    return "\n".join(lines)
