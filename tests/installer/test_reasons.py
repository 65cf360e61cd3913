"""Why a plan's steps run: recorded per-input hashes against the spec's, and switches."""

from __future__ import annotations

import json
from typing import Any

import pytest

from installer.components import ComponentTable, load_table
from installer.planner import Observed, State, component_digests, make_plan
from installer.reasons import step_reasons, summary_line
from tests.installer.test_planner import V, sample_spec


@pytest.fixture(scope="module")
def table() -> ComponentTable:
    return load_table()


def installed(table: ComponentTable, spec: dict[str, Any]) -> dict[str, Observed]:
    """What the status says after every desired component of ``spec`` installed."""
    plan = make_plan(table, spec, {}, version=V)
    return {n: Observed(State.ENABLED, plan.digests[n], inputs=plan.inputs[n]) for n in plan.desired}


def test_devops_toggle_says_which_input_changed_and_why_each_dependency_installs(
    table: ComponentTable,
) -> None:
    before = sample_spec()
    observed = installed(table, before)
    after = json.loads(json.dumps(before))
    after["devops"]["enabled"] = True
    plan = make_plan(table, after, observed, version=V)
    reasons = step_reasons(table, after, plan, observed)
    assert set(plan.steps) == {"core", "openldap", "minio", "jenkins", "devops"}
    assert reasons["core"] == ["spec.devops.enabled changed"]
    for name in ("openldap", "minio", "jenkins", "devops"):
        assert reasons[name] == ["not installed"]
    line = summary_line(plan, reasons)
    assert "install core (spec.devops.enabled changed; enabled in spec; needed by devops)" in line
    assert "install minio (not installed; needed by devops)" in line


def test_a_dependency_change_names_the_dependency(table: ComponentTable) -> None:
    spec = sample_spec()
    spec["devops"]["enabled"] = True
    observed = installed(table, spec)
    spec["common"]["openldap"]["volumeSize"] = "4Gi"
    plan = make_plan(table, spec, observed, version=V)
    reasons = step_reasons(table, spec, plan, observed)
    assert reasons["openldap"] == ["spec.common.openldap changed"]
    assert reasons["jenkins"] == ["needs openldap, which re-runs"]
    assert "needs openldap, which re-runs" in reasons["devops"]
    assert "needs jenkins, which re-runs" in reasons["devops"]


def test_uninstall_names_the_switch_and_a_version_change_says_so(table: ComponentTable) -> None:
    spec = sample_spec()
    spec["devops"]["enabled"] = True
    observed = installed(table, spec)
    spec["devops"]["enabled"] = False
    plan = make_plan(table, spec, observed, version=V)
    reasons = step_reasons(table, spec, plan, observed)
    assert reasons["devops"] == [
        "switched off in spec ('devops.enabled' is false) and no enabled component needs it"
    ]
    assert reasons["minio"] == ["installed only when needed, and no enabled component needs it now"]
    assert reasons["openldap"][0].startswith("switched off in spec ('common.openldap.enabled' is false)")

    upgraded = make_plan(table, sample_spec(), installed(table, sample_spec()), version="9.9.9")
    assert step_reasons(table, sample_spec(), upgraded, installed(table, sample_spec()))["core"] == [
        "installer version changed"
    ]


def test_states_and_records_without_hashes(table: ComponentTable) -> None:
    spec = sample_spec()
    digests = component_digests(table, spec, version=V)
    observed = {
        "core": Observed(State.ENABLED, "0" * 16),  # installed before per-input hashes were recorded
        "monitoring": Observed(State.FAILED, digests["monitoring"]),
    }
    plan = make_plan(table, spec, observed, version=V)
    reasons = step_reasons(table, spec, plan, observed)
    assert reasons["core"] == ["inputs changed since the last install (which recorded no per-input hashes)"]
    assert reasons["monitoring"] == ["last run failed"]


def test_input_hashes_hold_no_values(table: ComponentTable) -> None:
    spec = sample_spec()
    spec["common"]["openldap"]["enabled"] = True
    spec["common"]["openldap"]["adminPassword"] = "s3cret-value"
    plan = make_plan(table, spec, {}, version=V)
    text = json.dumps(plan.inputs)
    assert "s3cret-value" not in text and "2Gi" not in text
    assert set(plan.inputs["openldap"]) == {
        "spec.common.openldap", "spec.local_registry", "spec.namespace_override", "spec.persistence",
        "installer", "role",
    }  # fmt: skip
    # Equal values under different components or paths hash differently.
    assert plan.inputs["openldap"]["spec.persistence"] != plan.inputs["core"]["spec.persistence"]
