"""``ks-installer plan`` without processes: the events of check runs become the object list."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from installer.components import ComponentTable, load_table
from installer.planner import make_plan
from installer.preview import Preview, entries_of, format_preview, merge_entries, preview
from installer.runs import FAILED, SUCCESSFUL, Progress, RunRequest, RunResult
from tests.installer.test_planner import V, sample_spec

NS = "kubesphere-system"


def ok(action: str, results: list[dict[str, Any]] | None = None, **res: Any) -> dict[str, Any]:
    body = {**res, **({"results": results} if results is not None else {})}
    return {"event": "runner_on_ok", "event_data": {"task_action": action, "res": body}}


class ScriptedRunner:
    """Plays the events a check run of each component would send; records the requests."""

    def __init__(self, events: dict[str, list[dict[str, Any]]], fail: frozenset[str] = frozenset()) -> None:
        self.events, self.fail = events, fail
        self.requests: list[RunRequest] = []

    def run(
        self, request: RunRequest, *, on_event: Callable[[dict[str, Any]], None] | None = None
    ) -> RunResult:
        self.requests.append(request)
        for event in self.events.get(request.component, []):
            assert on_event is not None
            on_event(event)
        if request.component in self.fail:
            return RunResult(FAILED, 2, Progress(), 0.1, failed_task="x : X | Read", message="boom")
        return RunResult(SUCCESSFUL, 0, Progress(), 0.1)


@pytest.fixture(scope="module")
def table() -> ComponentTable:
    return load_table()


def live_installed(table: ComponentTable) -> dict[str, Any]:
    """A ClusterConfiguration whose status says the sample spec is installed."""
    spec = sample_spec()
    plan = make_plan(table, spec, {}, version=V)
    components = {
        n: {"state": "Enabled", "appliedDigest": plan.digests[n], "appliedInputs": plan.inputs[n]}
        for n in plan.desired
    }
    return {"metadata": {"generation": 4}, "spec": spec, "status": {"components": components}}


def devops_on(live: dict[str, Any]) -> dict[str, Any]:
    cc = json.loads(json.dumps(live))
    cc["spec"]["devops"]["enabled"] = True
    return cc


def run_preview(
    table: ComponentTable,
    runner: ScriptedRunner | None,
    live: dict[str, Any],
    cc: dict[str, Any],
    inventory: dict[str, Any] | None = None,
) -> Preview:
    return preview(
        table=table,
        runner=runner,
        live=live,
        cc=cc,
        namespace=NS,
        name="ks-installer",
        run_timeout=60,
        source="test",
        read_inventory=lambda c: (inventory or {}).get(c),
    )


def test_check_runs_become_objects_per_component(table: ComponentTable) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "namespace": NS,
        "name": "openldap-secret",
        "method": "created",
        "uid": "u-1",
    }
    events = {
        "core": [
            ok(
                "kubesphere.installer.apply",
                [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "namespace": NS,
                        "name": "ks-apiserver",
                        "method": "changed",
                        "fields": ["spec.template.metadata.annotations"],
                    },
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "namespace": NS,
                        "name": "ks-apiserver",
                        "method": "unchanged",
                    },
                ],
            ),
            ok("ansible.builtin.set_fact", [{"kind": "Nope", "name": "x", "method": "created"}]),
        ],
        "openldap": [
            # A no_log task hides its result; the run's closing report carries the entry.
            ok("kubesphere.installer.apply", censored="the output has been hidden"),
            ok("ansible.builtin.debug", ks_checked_objects=[secret]),
        ],
        "jenkins": [
            ok("ansible.builtin.debug", msg="Check mode: namespace kubesphere-devops-system does not exist")
        ],
    }
    runner = ScriptedRunner(events, fail=frozenset({"devops"}))
    live = live_installed(table)
    shown = run_preview(table, runner, live, devops_on(live))
    by = {c.name: c for c in shown.components}
    assert list(by) == ["openldap", "core", "minio", "jenkins", "devops"]
    assert runner.requests[0].component == "preflight"
    assert all(r.check for r in runner.requests)
    assert runner.requests[1].variables["ks_spec"]["devops"]["enabled"] is True
    assert [o["name"] for o in by["core"].objects] == ["ks-apiserver", "ks-apiserver"]  # Deployment, Service
    assert by["openldap"].objects == [{k: v for k, v in secret.items() if k != "uid"}]
    assert by["jenkins"].notes and by["devops"].error and "boom" in by["devops"].error
    assert not shown.complete

    text = format_preview(shown)
    assert "install core: spec.devops.enabled changed; enabled in spec; needed by devops" in text
    assert "  ~ Deployment kubesphere-system/ks-apiserver: spec.template.metadata.annotations" in text
    assert "  = 1 unchanged" in text
    assert "  + Secret kubesphere-system/openldap-secret" in text
    assert "  objects unknown: check run failed: task 'x : X | Read': boom" in text
    doc = shown.as_json()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["components"][1]["name"] == "core" and doc["upToDate"] == ["monitoring"]


def test_uninstall_without_removals_lists_the_inventory(table: ComponentTable) -> None:
    spec = sample_spec()
    spec["common"]["redis"]["enabled"] = True
    plan = make_plan(table, spec, {}, version=V)
    status = {
        n: {"state": "Enabled", "appliedDigest": plan.digests[n], "appliedInputs": plan.inputs[n]}
        for n in plan.desired
    }
    live = {"metadata": {"generation": 2}, "spec": spec, "status": {"components": status}}
    off = json.loads(json.dumps(live))
    off["spec"]["common"]["redis"]["enabled"] = False
    refs = [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": NS, "name": "redis", "uid": "u"}]
    inventory = {"redis": {"data": {"objects.json": json.dumps(refs)}}}
    shown = run_preview(table, ScriptedRunner({}), live, off, inventory)
    redis = next(c for c in shown.components if c.name == "redis")
    assert redis.action == "uninstall" and redis.why[0].startswith("switched off in spec")
    assert redis.objects == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "namespace": NS,
            "name": "redis",
            "method": "deleted",
            "reason": "recorded in the component's inventory",
        }
    ]
    assert "  - Deployment kubesphere-system/redis (recorded in the component's inventory)" in format_preview(
        shown
    )


def test_nothing_to_do_and_components_only(table: ComponentTable) -> None:
    live = live_installed(table)
    runner = ScriptedRunner({})
    shown = run_preview(table, runner, live, live)
    assert shown.components == [] and runner.requests == []
    assert "nothing to do: 2 components up to date" in format_preview(shown)
    quick = run_preview(table, None, live, devops_on(live))
    assert quick.complete and not quick.objects_checked and len(quick.components) == 5


def test_entries_keep_contract_keys_and_merge_repeats() -> None:
    event = ok(
        "kubesphere.installer.remove",
        [
            {
                "kind": "PersistentVolumeClaim",
                "name": "data",
                "namespace": NS,
                "method": "kept",
                "reason": "holds data",
                "extra": "x",
            }
        ],
    )
    assert entries_of(event) == [
        {
            "kind": "PersistentVolumeClaim",
            "name": "data",
            "namespace": NS,
            "method": "kept",
            "reason": "holds data",
        }
    ]
    assert entries_of({"event": "runner_on_failed", "event_data": event["event_data"]}) == []
    # A loop reports each item's results in an item event; the task's own event lists the items.
    item = {**event, "event": "runner_item_on_ok"}
    assert entries_of(item) == entries_of(event)
    looped = ok(
        "kubesphere.installer.apply", [{"item": "a", "results": event["event_data"]["res"]["results"]}]
    )
    assert entries_of(looped) == []
    a = {"kind": "ConfigMap", "name": "c", "method": "unchanged"}
    b = {"kind": "ConfigMap", "name": "c", "method": "changed", "fields": ["data.x"]}
    c = {"kind": "ConfigMap", "name": "c", "method": "changed", "fields": ["data.y"]}
    assert merge_entries([a, b, c]) == [
        {"kind": "ConfigMap", "name": "c", "method": "changed", "fields": ["data.x", "data.y"]}
    ]


def test_held_components_are_planned_and_marked(table: ComponentTable) -> None:
    live = live_installed(table)
    live["metadata"]["annotations"] = {"installer.kubesphere.io/paused-components": "devops, jenkins"}
    shown = run_preview(table, None, live, devops_on(live))
    held = {c.name for c in shown.components if c.held}
    assert held == {"devops", "jenkins"} and len(shown.components) == 5
    text = format_preview(shown)
    assert "paused for devops, jenkins (installer.kubesphere.io/paused-components)" in text
    assert "install jenkins (held: paused): " in text and "install core: " in text
    assert shown.as_json()["components"][4]["held"] is True
    # The file's annotations win over the live ones, as an apply of it would leave them.
    resumed = devops_on(live)
    resumed["metadata"]["annotations"] = {"installer.kubesphere.io/paused-components": ""}
    shown = run_preview(table, None, live, resumed)
    assert shown.paused is None and not any(c.held for c in shown.components)
    everything = devops_on(live)
    everything["metadata"]["annotations"] = {"installer.kubesphere.io/paused": "true"}
    assert all(c.held for c in run_preview(table, None, live, everything).components)
