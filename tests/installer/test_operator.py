"""The operator against the local cluster, with the probe roles doing real work.

Each test runs ``ks-installer run`` as a process watching a ClusterConfiguration
in its own namespace and checks what a user would see: status, Events, the
objects the roles create and remove, and the operator's log.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable

import pytest
from kubernetes import client

from tests.conftest import Cluster
from tests.installer.conftest import (
    Operator,
    cc_events,
    component,
    condition,
    create_cc,
    get_cc,
    patch_cc,
    probe_objects,
    probe_spec,
    wait_ready,
    wait_until,
)

pytestmark = pytest.mark.cluster

OperatorFactory = Callable[..., Operator]


def test_install_in_dependency_order_then_ready(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    # beta is not switched on: gamma needs it (its entry only says where its objects go).
    create_cc(
        cluster, namespace, probe_spec(namespace, alpha={"enabled": True}, beta={}, gamma={"enabled": True})
    )
    op = operators()
    cc = wait_ready(cluster, namespace)

    # gamma needs beta needs alpha: all three installed, one after the other.
    reasons = [(r, m.split(":")[0].split(" ")[0]) for r, m in cc_events(cluster, namespace)]
    order = [name for r, name in reasons if r == "ComponentEnabled"]
    assert order == ["alpha", "beta", "gamma"]
    starts = [name for r, name in reasons if r == "ComponentInstalling"]
    assert starts == ["alpha", "beta", "gamma"]
    assert reasons.index(("ComponentInstalling", "beta")) > reasons.index(("ComponentEnabled", "alpha"))
    assert ("Ready", "all") in reasons

    status = cc["status"]
    for name in ("alpha", "beta", "gamma"):
        assert status[name]["status"] == "enabled"  # ks-installer's key, kept exactly
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dUTC", status[name]["enabledTime"])
        comp = component(cc, name)
        assert comp["state"] == "Enabled"
        assert comp["appliedDigest"]
        assert comp["tasks"]["done"] == comp["tasks"]["total"] > 0
        assert probe_objects(cluster, namespace, name) == {"configmaps": 1, "deployments": 1, "pods": 1}
    assert component(cc, "beta")["reason"] == "needed by gamma"
    assert "delta" not in status["components"]
    assert condition(cc, "Degraded")["status"] == "False"
    assert condition(cc, "Progressing")["status"] == "False"
    assert status["summary"] == "3/3 enabled"

    log = op.log()
    assert re.search(r"\[beta\] \d+/\d+ tasks: Probe \| Apply the Deployment", log)
    assert "Welcome to KubeSphere!" in log
    assert "initAdminPassword" in log  # says how to read the password, never prints one


def test_toggle_runs_only_that_component_and_disable_removes_it(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    create_cc(cluster, namespace, probe_spec(namespace, alpha={"enabled": True}, beta={"enabled": True}))
    operators()
    before = wait_ready(cluster, namespace)
    seen = len(cc_events(cluster, namespace))

    patch_cc(
        cluster,
        namespace,
        [{"op": "add", "path": "/spec/probe/delta", "value": {"enabled": True, "namespace": namespace}}],
    )
    after = wait_ready(cluster, namespace)
    new = cc_events(cluster, namespace)[seen:]
    assert [m.split(":")[0] for r, m in new if r == "ComponentInstalling"] == ["delta"]
    for name in ("alpha", "beta"):  # untouched: same run, same transition time
        assert component(after, name) == component(before, name)
    assert component(after, "delta")["state"] == "Enabled"
    assert probe_objects(cluster, namespace, "delta")["deployments"] == 1

    seen = len(cc_events(cluster, namespace))
    patch_cc(cluster, namespace, [{"op": "replace", "path": "/spec/probe/delta/enabled", "value": False}])
    off = wait_ready(cluster, namespace)
    assert component(off, "delta")["state"] == "Disabled"
    assert "delta" not in off["status"]  # ks-installer's key goes with the component
    assert probe_objects(cluster, namespace, "delta") == {"configmaps": 0, "deployments": 0, "pods": 0}
    reasons = [r for r, _ in cc_events(cluster, namespace)[seen:]]
    assert "ComponentDisabling" in reasons and "ComponentDisabled" in reasons
    assert probe_objects(cluster, namespace, "alpha")["deployments"] == 1


def test_wrong_type_patch_is_rejected_with_its_path(cluster: Cluster, namespace: str, cc_crd: None) -> None:
    create_cc(cluster, namespace, {"devops": {"enabled": False}})
    result = patch_cc(
        cluster, namespace, [{"op": "replace", "path": "/spec/devops/enabled", "value": "yes"}], check=False
    )
    assert result.returncode != 0
    assert "spec.devops.enabled" in result.stderr
    assert get_cc(cluster, namespace)["spec"]["devops"]["enabled"] is False


def test_failed_task_is_reported_then_retried_until_fixed(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    create_cc(
        cluster,
        namespace,
        probe_spec(namespace, alpha={"enabled": True}, beta={"enabled": True, "fail": True}),
    )
    operators()

    def failed_twice() -> dict | None:
        cc = get_cc(cluster, namespace)
        beta = component(cc, "beta")
        return cc if beta.get("state") == "Failed" and beta.get("attempts", 0) >= 2 else None

    cc = wait_until(failed_twice, "beta to fail and be retried")
    beta = component(cc, "beta")
    assert beta["failedTask"] == "probe : Probe | Refuse on purpose"
    assert "probe beta was told to fail" in beta["message"]
    assert cc["status"]["beta"]["status"] == "failed"
    degraded = condition(cc, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "ComponentFailed"
    assert "Refuse on purpose" in degraded["message"]
    assert condition(cc, "Ready")["status"] == "False"
    warnings = [m for r, m in cc_events(cluster, namespace) if r == "ComponentFailed"]
    assert len(warnings) >= 2 and "Refuse on purpose" in warnings[0]
    assert component(cc, "alpha")["state"] == "Enabled"  # what did not fail stays enabled

    patch_cc(cluster, namespace, [{"op": "replace", "path": "/spec/probe/beta/fail", "value": False}])
    cc = wait_ready(cluster, namespace)
    assert component(cc, "beta")["state"] == "Enabled"
    assert "failedTask" not in component(cc, "beta")
    assert condition(cc, "Degraded")["status"] == "False"


def test_sigkill_mid_run_then_restart_converges_without_duplicates(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    create_cc(
        cluster,
        namespace,
        probe_spec(namespace, alpha={"enabled": True}, beta={"enabled": True, "sleep": 6}),
    )
    first = operators()

    def beta_installing() -> bool:
        return component(get_cc(cluster, namespace), "beta").get("state") == "Installing"

    wait_until(beta_installing, "beta to be installing")
    first.kill()
    second = operators()
    cc = wait_ready(cluster, namespace)
    assert "resuming from status" in second.log()
    for name in ("alpha", "beta"):
        assert probe_objects(cluster, namespace, name) == {"configmaps": 1, "deployments": 1, "pods": 1}
    assert component(cc, "beta")["state"] == "Enabled"


def test_patches_during_a_run_coalesce_to_the_last_spec(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    create_cc(cluster, namespace, probe_spec(namespace, alpha={"enabled": True, "sleep": 4, "value": "v0"}))
    operators()
    wait_until(
        lambda: component(get_cc(cluster, namespace), "alpha").get("state") == "Installing", "alpha running"
    )
    for i in range(1, 11):
        patch_cc(cluster, namespace, [{"op": "replace", "path": "/spec/probe/alpha/value", "value": f"v{i}"}])
    cc = wait_ready(cluster, namespace)
    data = client.CoreV1Api(cluster.api).read_namespaced_config_map("probe-alpha", namespace).data
    assert data["value"] == "v10"
    assert cc["status"]["observedGeneration"] == cc["metadata"]["generation"]
    installs = [m for r, m in cc_events(cluster, namespace) if r == "ComponentInstalling"]
    assert 2 <= len(installs) <= 4  # coalesced: not one run per patch


def test_spec_values_are_never_templated(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    create_cc(cluster, namespace, probe_spec(namespace, alpha={"enabled": True, "value": "{{ 7 * 6 }}"}))
    operators()
    wait_ready(cluster, namespace)
    data = client.CoreV1Api(cluster.api).read_namespaced_config_map("probe-alpha", namespace).data
    assert data["value"] == "{{ 7 * 6 }}"


def test_preflight_failure_changes_nothing(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    spec = probe_spec(namespace, alpha={"enabled": True})
    spec["probe_preflight_reject"] = True
    create_cc(cluster, namespace, spec)
    op = operators()
    op.wait_log("[preflight] failed, nothing was changed")

    def degraded() -> dict | None:
        cc = get_cc(cluster, namespace)
        return cc if condition(cc, "Degraded").get("reason") == "PreflightFailed" else None

    cc = wait_until(degraded, "Degraded=PreflightFailed")
    assert "refusing before any change" in condition(cc, "Degraded")["message"]
    assert probe_objects(cluster, namespace, "alpha")["configmaps"] == 0
    assert "PreflightFailed" in [r for r, _ in cc_events(cluster, namespace)]

    patch_cc(cluster, namespace, [{"op": "replace", "path": "/spec/probe_preflight_reject", "value": False}])
    wait_ready(cluster, namespace)
    assert probe_objects(cluster, namespace, "alpha")["configmaps"] == 1


def test_unsupported_component_is_reported(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    create_cc(cluster, namespace, probe_spec(namespace, alpha={"enabled": True}, omega={"enabled": True}))
    operators()
    cc = wait_ready(cluster, namespace)
    assert component(cc, "omega")["state"] == "Unsupported"
    assert "not supported: omega" in condition(cc, "Ready")["message"]
    assert "ComponentUnsupported" in [r for r, _ in cc_events(cluster, namespace)]


def test_status_command_metrics_and_noop_restart(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    create_cc(cluster, namespace, probe_spec(namespace, alpha={"enabled": True}))
    op = operators()
    cc = wait_ready(cluster, namespace)
    out = subprocess.run(
        [sys.executable, "-m", "installer.cli", "--kubeconfig", str(cluster.kubeconfig),
         "-n", namespace, "status"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert re.search(r"^alpha\s+Enabled\s+\S+\s+\d+/\d+", out.stdout, re.M)
    assert "Ready=True" in out.stdout
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{op.port}/metrics", timeout=5).read().decode()
    assert 'ks_installer_runs_total{action="install",component="alpha",outcome="successful"} 1.0' in metrics
    assert urllib.request.urlopen(f"http://127.0.0.1:{op.port}/healthz", timeout=5).status == 200
    assert urllib.request.urlopen(f"http://127.0.0.1:{op.port}/readyz", timeout=5).status == 200

    # A restart with nothing changed runs nothing and writes no status. Its first pass plans
    # nothing, writes the status if it differs, then prints the banner: once the banner is
    # logged, any run or write that pass made has happened.
    op.stop()
    again = operators()
    after = again.wait_log("became leader")
    after = again.wait_log("[plan] nothing to do", after=after)
    again.wait_log("all enabled components are ready", after=after)
    assert "installing" not in again.log()
    assert get_cc(cluster, namespace)["metadata"]["resourceVersion"] == cc["metadata"]["resourceVersion"]


def test_two_replicas_one_leader_and_takeover(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    create_cc(cluster, namespace, probe_spec(namespace, alpha={"enabled": True}))
    a = operators()
    a.wait_log("became leader")
    b = operators()
    b.wait_log("waiting to be elected")
    b.wait_log("standing by: another replica holds lease")  # b has campaigned and lost
    wait_ready(cluster, namespace)
    assert "became leader" not in b.log()
    assert "[alpha]" not in b.log()
    lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease("ks-installer", namespace)
    holder = lease.spec.holder_identity

    killed = datetime.datetime.now(datetime.UTC)
    a.kill()
    b.wait_log("became leader", timeout=30)
    # However slow b was, it led only once a was gone: it acquired the lease after the kill,
    # and became leader once.
    lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease("ks-installer", namespace)
    assert lease.spec.acquire_time >= killed
    assert b.log().count("became leader") == 1
    patch_cc(
        cluster,
        namespace,
        [{"op": "add", "path": "/spec/probe/delta", "value": {"enabled": True, "namespace": namespace}}],
    )
    cc = wait_ready(cluster, namespace)
    assert component(cc, "delta")["state"] == "Enabled"
    assert "[delta] installing" in b.log()
    lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease("ks-installer", namespace)
    assert lease.spec.holder_identity != holder
    assert lease.spec.lease_transitions >= 1


def test_drift_check_repairs_objects_removed_by_hand(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    create_cc(cluster, namespace, probe_spec(namespace, alpha={"enabled": True}))
    op = operators("--drift-interval", "3")
    wait_ready(cluster, namespace)
    core = client.CoreV1Api(cluster.api)
    core.delete_namespaced_config_map("probe-alpha", namespace)

    def back() -> bool:
        try:
            core.read_namespaced_config_map("probe-alpha", namespace)
        except client.ApiException:
            return False
        return True

    wait_until(back, "the drift check to put the ConfigMap back")
    wait_until(
        lambda: "DriftRepaired" in [r for r, _ in cc_events(cluster, namespace)], "a DriftRepaired event"
    )
    assert "drift repaired" in op.log()
    assert component(get_cc(cluster, namespace), "alpha")["state"] == "Enabled"


def test_switching_off_during_install_cancels_it_and_removes_what_it_made(
    cluster: Cluster, namespace: str, operators: OperatorFactory
) -> None:
    create_cc(cluster, namespace, probe_spec(namespace, alpha={"enabled": True}))
    op = operators()
    wait_ready(cluster, namespace)
    spec = {"enabled": True, "namespace": namespace, "sleep": 8}
    patch_cc(cluster, namespace, [{"op": "add", "path": "/spec/probe/delta", "value": spec}])
    wait_until(
        lambda: component(get_cc(cluster, namespace), "delta").get("state") == "Installing", "delta running"
    )
    patch_cc(cluster, namespace, [{"op": "replace", "path": "/spec/probe/delta/enabled", "value": False}])
    cc = wait_ready(cluster, namespace)
    assert "[delta] install canceled" in op.log()
    assert component(cc, "delta")["state"] == "Disabled"
    assert probe_objects(cluster, namespace, "delta") == {"configmaps": 0, "deployments": 0, "pods": 0}
