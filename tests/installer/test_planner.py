"""Planner: desired set, digests, install/uninstall steps and their order."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from installer import __version__
from installer.components import ComponentTable, load_table, parse_table
from installer.errors import ConfigurationError
from installer.expressions import ExpressionError, evaluate
from installer.planner import Action, Observed, State, make_plan, runnable

V = __version__  # the version the installer plans with


def sample_spec() -> dict[str, Any]:
    return {
        "persistence": {"storageClass": ""},
        "local_registry": "",
        "common": {
            "redis": {"enabled": False, "enableHA": False, "volumeSize": "2Gi"},
            "openldap": {"enabled": False, "volumeSize": "2Gi"},
            "minio": {"volumeSize": "20Gi"},
        },
        "devops": {"enabled": False, "jenkinsMemoryLim": "4Gi"},
        "monitoring": {"storageClass": ""},
        "logging": {"enabled": False},
        "multicluster": {"clusterRole": "none"},
        "network": {
            "networkpolicy": {"enabled": False},
            "ippool": {"type": "none"},
            "topology": {"type": "none"},
        },
    }


@pytest.fixture(scope="module")
def table() -> ComponentTable:
    return load_table()


def enabled_all(
    plan_desired: dict[str, list[str]], table: ComponentTable, digests: dict[str, str]
) -> dict[str, Observed]:
    return {n: Observed(State.ENABLED, digests[n]) for n in plan_desired}


def test_expressions() -> None:
    spec = {"a": {"b": True, "c": "none"}, "x": None}
    assert evaluate("a.b", spec)
    assert evaluate("a.missing or a.b", spec)
    assert not evaluate("a.b and a.missing", spec)
    assert evaluate("a.c == 'none'", spec)
    assert evaluate("a.c != 'host'", spec)
    assert evaluate("not x", spec)
    assert evaluate("a.missing != false", spec)
    assert evaluate(True, spec)
    for bad in ("__import__('os')", "a.b + 1", "a[0]", "a.c > 'a'", "lambda: 1"):
        with pytest.raises(ExpressionError):
            evaluate(bad, spec)


def test_default_table_is_valid_and_ordered(table: ComponentTable) -> None:
    order = table.topological_order()
    assert order.index("openldap") < order.index("jenkins") < order.index("devops")
    assert order.index("core") < order.index("devops")


def test_sample_spec_wants_core_and_monitoring_only(table: ComponentTable) -> None:
    plan = make_plan(table, sample_spec(), {}, version=V)
    assert list(plan.desired) == ["core", "monitoring"]
    assert {s.action for s in plan.steps.values()} == {Action.INSTALL}
    assert plan.unsupported == []


def test_devops_pulls_in_its_dependencies(table: ComponentTable) -> None:
    spec = sample_spec()
    spec["devops"]["enabled"] = True
    plan = make_plan(table, spec, {}, version=V)
    assert set(plan.desired) == {"core", "monitoring", "openldap", "minio", "jenkins", "devops"}
    assert plan.desired["openldap"] == ["needed by jenkins", "needed by devops"]
    assert plan.steps["devops"].after == {"core", "openldap", "minio", "jenkins"}
    # External S3 drops minio.
    spec["common"]["s3"] = {"endpoint": "http://s3.example:9000"}
    assert "minio" not in make_plan(table, spec, {}, version=V).desired


def test_nothing_changed_means_empty_plan(table: ComponentTable) -> None:
    spec = sample_spec()
    first = make_plan(table, spec, {}, version=V)
    observed = enabled_all(first.desired, table, first.digests)
    assert make_plan(table, copy.deepcopy(spec), observed, version=V).empty


def test_only_the_toggled_component_and_what_it_needs_run(table: ComponentTable) -> None:
    spec = sample_spec()
    first = make_plan(table, spec, {}, version=V)
    observed = enabled_all(first.desired, table, first.digests)
    spec["common"]["redis"]["enabled"] = True
    plan = make_plan(table, spec, observed, version=V)
    # redis is new; core re-runs because it reads redis settings and needs redis now.
    assert set(plan.steps) == {"redis", "core"}
    assert plan.steps["core"].after == {"redis"}
    ready = runnable(plan, done=set(), running=set(), blocked=set())
    assert [s.component for s in ready] == ["redis"]


def test_changed_input_reruns_the_component_and_its_dependents(table: ComponentTable) -> None:
    spec = sample_spec()
    spec["devops"]["enabled"] = True
    first = make_plan(table, spec, {}, version=V)
    observed = enabled_all(first.desired, table, first.digests)
    spec["common"]["openldap"]["volumeSize"] = "5Gi"
    plan = make_plan(table, spec, observed, version=V)
    assert set(plan.steps) == {"openldap", "jenkins", "devops"}


def test_version_change_reruns_everything(table: ComponentTable) -> None:
    spec = sample_spec()
    first = make_plan(table, spec, {}, version=V)
    observed = enabled_all(first.desired, table, first.digests)
    assert set(make_plan(table, spec, observed, version=f"{V}.1").steps) == {"core", "monitoring"}


def test_failed_component_is_planned_again(table: ComponentTable) -> None:
    spec = sample_spec()
    first = make_plan(table, spec, {}, version=V)
    observed = enabled_all(first.desired, table, first.digests)
    observed["monitoring"] = Observed(State.FAILED, None)
    assert set(make_plan(table, spec, observed, version=V).steps) == {"monitoring"}


def test_disabling_uninstalls_dependents_first_and_keeps_what_is_still_needed(table: ComponentTable) -> None:
    spec = sample_spec()
    spec["devops"]["enabled"] = True
    spec["common"]["openldap"]["enabled"] = True
    first = make_plan(table, spec, {}, version=V)
    observed = enabled_all(first.desired, table, first.digests)
    spec["devops"]["enabled"] = False
    plan = make_plan(table, spec, observed, version=V)
    uninstall = {n for n, s in plan.steps.items() if s.action == Action.UNINSTALL}
    assert uninstall == {"devops", "jenkins", "minio"}  # openldap stays: switched on by itself
    # core renders the devops endpoint into its configuration, so it re-runs.
    assert {n for n, s in plan.steps.items() if s.action == Action.INSTALL} == {"core"}
    assert plan.steps["jenkins"].after == {"devops"}
    assert plan.steps["minio"].after == {"devops"}
    ready = runnable(plan, done=set(), running=set(), blocked=set())
    assert [s.component for s in ready] == ["core", "devops"]
    ready = runnable(plan, done={"devops"}, running={"core"}, blocked=set())
    assert {s.component for s in ready} == {"jenkins", "minio"}


def test_never_installed_components_are_not_uninstalled(table: ComponentTable) -> None:
    observed = {"devops": Observed(State.DISABLED), "redis": Observed(State.PENDING)}
    plan = make_plan(table, sample_spec(), observed, version=V)
    assert all(s.action == Action.INSTALL for s in plan.steps.values())


def test_unsupported_components_are_reported(table: ComponentTable) -> None:
    spec = sample_spec()
    spec["logging"]["enabled"] = True
    spec["multicluster"]["clusterRole"] = "host"
    plan = make_plan(table, spec, {}, version=V)
    assert plan.unsupported == ["logging", "multicluster"]
    assert "logging" not in plan.desired


def test_spec_values_with_jinja_are_only_data(table: ComponentTable) -> None:
    spec = sample_spec()
    spec["common"]["redis"]["volumeSize"] = "{{ lookup('pipe', 'id') }}"
    spec["common"]["redis"]["enabled"] = True
    plan = make_plan(table, spec, {}, version=V)
    assert "redis" in plan.steps


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"components": [{"name": "a", "role": "r", "needs": ["b"]}]}, "unknown component b"),
        (
            {
                "components": [
                    {"name": "a", "role": "r", "needs": ["b"]},
                    {"name": "b", "role": "r", "needs": ["a"]},
                ]
            },
            "dependency cycle",
        ),
        ({"components": [{"name": "a", "enabled": "a.b +"}]}, "cannot parse"),
        ({"components": [{"name": "a", "enabled": True}]}, "has no role"),
        ({"components": [{"role": "x"}]}, "malformed"),
    ],
)
def test_bad_tables_are_rejected(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_table(doc)
