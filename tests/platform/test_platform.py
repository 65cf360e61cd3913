"""The whole product on the local cluster: the operator with the real roles and table.

What a platform engineer does: apply the sample ClusterConfiguration, wait for Ready,
toggle devops with the documented kubectl patch, hand-edit kubesphere-config, restart
the operator. Runs in kubesphere-system, and removes everything at the end.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client

from devcluster import backend, kube
from devcluster.services import free_port
from tests.conftest import Cluster
from tests.helpers import kubectl, uninstall_platform, wait_for
from tests.installer.conftest import Operator, component, condition

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
NS = "kubesphere-system"
DEVOPS_NS = "kubesphere-devops-system"
GROUP, VERSION, PLURAL = "installer.kubesphere.io", "v1alpha1", "clusterconfigurations"
CRD = REPO / "deploy" / "crds" / "installer.kubesphere.io_clusterconfigurations.yaml"
SAMPLE = REPO / "deploy" / "cluster-configuration.yaml"


def patch(cluster: Cluster, path: str, value: Any) -> None:
    """The documented command: kubectl patch -nkubesphere-system cc ks-installer --type=json -p=..."""
    ops = json.dumps([{"op": "replace", "path": path, "value": value}])
    kubectl(cluster.kubectl, cluster.kubeconfig, "patch", "-nkubesphere-system", "cc", "ks-installer",
            "--type=json", f"-p={ops}")  # fmt: skip


def get_cc(cluster: Cluster) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "ks-installer"
    )
    return obj


def wait_ready(cluster: Cluster, timeout: float = 900) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        cc = get_cc(cluster)
        cond = condition(cc, "Ready")
        if cond.get("status") == "True" and cond.get("observedGeneration") == cc["metadata"]["generation"]:
            return cc
        return None

    return wait_for(ready, timeout=timeout, what="the platform to be Ready", interval=1)


def available(cluster: Cluster, kind: str, name: str, namespace: str) -> bool:
    apps = client.AppsV1Api(cluster.api)
    if kind == "Deployment":
        d = apps.read_namespaced_deployment(name, namespace)
        return (d.status.available_replicas or 0) == d.spec.replicas
    s = apps.read_namespaced_stateful_set(name, namespace)
    return (s.status.ready_replicas or 0) == s.spec.replicas


def absent(cluster: Cluster, name: str, namespace: str) -> bool:
    try:
        client.AppsV1Api(cluster.api).read_namespaced_deployment(name, namespace)
    except client.ApiException as exc:
        return exc.status == 404
    return False


@pytest.fixture(scope="module")
def platform(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    kube.apply_crd(cluster.api, CRD)
    kubectl(cluster.kubectl, cluster.kubeconfig, "create", "namespace", NS, check=False)
    kubectl(cluster.kubectl, cluster.kubeconfig, "apply", "-f", str(SAMPLE))
    env = dict(os.environ, KS_INSTALLER_BACKOFF_BASE="2", KS_INSTALLER_BACKOFF_CAP="20")
    log = tmp_path_factory.mktemp("platform") / "operator.log"
    op = Operator(cluster, NS, log, env, [], table=None).start()
    try:
        yield op
    finally:
        op.stop()
        sys.stderr.write(f"\n---- operator log (tail) ----\n{op.log()[-4000:]}\n")
        uninstall_platform(cluster.kubectl, cluster.kubeconfig, NS)


def test_sample_installs_and_enabled_workloads_are_available(cluster: Cluster, platform: Operator) -> None:
    cc = wait_ready(cluster)
    status = cc["status"]
    assert status["core"]["status"] == "enabled" and status["core"]["version"] == "v0.2.0"
    assert status["monitoring"]["status"] == "enabled"
    for name in ("ks-apiserver", "ks-controller-manager", "ks-console"):
        assert available(cluster, "Deployment", name, NS)
    assert available(cluster, "StatefulSet", "prometheus-k8s", "kubesphere-monitoring-system")
    assert "devops" not in status["components"]
    assert "Welcome to KubeSphere!" in platform.log()


def test_backend_logs_admin_in_with_the_generated_password(
    cluster: Cluster, platform: Operator, tmp_path: Path
) -> None:
    """make up's backend step: the core role's admin User, hashed by ks-controller-manager, logs in."""
    wait_ready(cluster)
    bind = f"127.0.0.1:{free_port()}"
    try:
        lines = backend.up(
            cluster.api, cluster.kubeconfig, tmp_path, apiserver_bind=bind,
            controller_listen=f"127.0.0.1:{free_port()}", timeout=180,
        )  # fmt: skip
        assert any("admin logged in" in line for line in lines)
        admin = client.CustomObjectsApi(cluster.api).get_cluster_custom_object(
            "iam.kubesphere.io", "v1alpha2", "users", "admin"
        )
        assert admin["status"]["state"] == "Active"
        assert admin["spec"]["password"].startswith("$2")
        config = (tmp_path / "backend" / "kubesphere.yaml").read_text()
        secret = client.CoreV1Api(cluster.api).read_namespaced_secret("kubesphere-secret", NS).data
        assert all(base64.b64decode(value).decode() not in config for value in secret.values())
        # The console's charts: a local Prometheus stands in for the endpoint and scrapes the control plane.
        endpoint = yaml.safe_load(config)["monitoring"]["endpoint"]
        assert endpoint.startswith("http://127.0.0.1:")
        password = base64.b64decode(secret["initAdminPassword"]).decode()

        def etcd_up() -> bool:
            resp = requests.get(
                f"http://{bind}/kapis/monitoring.kubesphere.io/v1alpha3/components/etcd",
                params={"metrics_filter": "etcd_server_list$"}, auth=("admin", password), timeout=30,
            )  # fmt: skip
            rows = resp.json()["results"][0]["data"].get("result") if resp.status_code == 200 else None
            return bool(rows and rows[0]["value"][1] == "1")

        wait_for(etcd_up, timeout=90, what="the local Prometheus to have scraped etcd", interval=1)
    finally:
        backend.down(tmp_path)
        for name in ("ks-apiserver", "ks-controller-manager"):
            log = tmp_path / "logs" / f"{name}.log"
            if log.exists():
                sys.stderr.write(f"\n---- {name} log (tail) ----\n{log.read_text()[-3000:]}\n")


def resource_versions(cluster: Cluster) -> dict[str, str]:
    """Every object of the platform's namespaces that a devops install could touch, with its version."""
    core, apps = client.CoreV1Api(cluster.api), client.AppsV1Api(cluster.api)
    found = {"cc": get_cc(cluster)["metadata"]["resourceVersion"]}
    for ns in (NS, "kubesphere-monitoring-system"):
        for kind, lister in (
            ("ConfigMap", core.list_namespaced_config_map), ("Secret", core.list_namespaced_secret),
            ("Service", core.list_namespaced_service), ("Deployment", apps.list_namespaced_deployment),
            ("StatefulSet", apps.list_namespaced_stateful_set),
        ):  # fmt: skip
            for item in lister(ns).items:
                found[f"{kind} {ns}/{item.metadata.name}"] = item.metadata.resource_version
    for item in core.list_namespace().items:
        found[f"Namespace {item.metadata.name}"] = item.metadata.resource_version
    return found


def ks_installer(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "installer.cli", "--kubeconfig", str(cluster.kubeconfig), "-n", NS, *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=900, check=False)


def test_plan_of_the_devops_toggle_lists_components_and_objects_and_changes_nothing(
    cluster: Cluster, platform: Operator
) -> None:
    wait_ready(cluster)
    before = resource_versions(cluster)
    ops = json.dumps([{"op": "replace", "path": "/spec/devops/enabled", "value": True}])
    out = ks_installer(cluster, "plan", "-p", ops, "-o", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    plan = {c["name"]: c for c in doc["components"]}
    assert list(plan) == ["openldap", "core", "minio", "jenkins", "devops"]
    assert {c["action"] for c in plan.values()} == {"install"}
    assert plan["core"]["why"] == ["spec.devops.enabled changed"]
    for name in ("openldap", "minio", "jenkins", "devops"):
        assert plan[name]["why"] == ["not installed"] and plan[name]["error"] is None
    assert "needed by devops" in plan["minio"]["wanted"]
    assert doc["upToDate"] == ["monitoring"]

    def objects(name: str) -> dict[str, dict[str, Any]]:
        return {f"{o['kind']} {o.get('namespace', '')}/{o['name']}": o for o in plan[name]["objects"]}

    config = objects("core")[f"ConfigMap {NS}/kubesphere-config"]
    assert config["method"] == "changed" and 'data["kubesphere.yaml"].devops' in config["fields"]
    assert objects("core")[f"Deployment {NS}/ks-apiserver"]["method"] == "changed"
    assert objects("openldap")[f"StatefulSet {NS}/openldap"]["method"] == "created"
    assert objects("openldap")[f"Secret {NS}/openldap-secret"]["method"] == "created"
    assert objects("minio")[f"Deployment {NS}/minio"]["method"] == "created"
    assert objects("devops")[f"Namespace /{DEVOPS_NS}"]["method"] == "created"
    assert any(DEVOPS_NS in note for note in plan["jenkins"]["notes"])  # check mode stops at the namespace
    for step in plan.values():
        for entry in step["objects"]:
            assert set(entry) <= {"apiVersion", "kind", "namespace", "name", "method", "fields", "reason"}

    # Switching monitoring off: what its uninstall would remove, and what it would keep.
    monitoring_off = '{"spec": {"monitoring": {"enabled": false}}}'
    off = ks_installer(cluster, "plan", "--type", "merge", "-p", monitoring_off)
    assert off.returncode == 0, off.stderr
    assert "uninstall monitoring: switched off in spec ('monitoring.enabled != false' is false)" in off.stdout
    assert "  - StatefulSet kubesphere-monitoring-system/prometheus-k8s\n" in off.stdout
    assert "  ! Namespace kubesphere-monitoring-system (namespaces stay" in off.stdout

    assert resource_versions(cluster) == before  # nothing created, changed or removed

    bad = ks_installer(
        cluster, "plan", "--no-objects", "-p", '[{"op": "replace", "path": "/spec/nope/x", "value": 1}]'
    )
    assert bad.returncode == 2 and "'/spec/nope/x'" in bad.stderr


def test_documented_patch_enables_devops_and_its_dependencies(cluster: Cluster, platform: Operator) -> None:
    wait_ready(cluster)
    offset = len(platform.log())
    patch(cluster, "/spec/devops/enabled", True)
    cc = wait_ready(cluster, timeout=1200)
    # Before the runs start, the operator logs its plan for the generation: what runs and why.
    assert (
        "install core (spec.devops.enabled changed; enabled in spec; needed by devops)"
        in platform.log()[offset:]
    )
    status = cc["status"]
    assert status["devops"]["status"] == "enabled"
    assert status["openldap"]["status"] == "enabled" and status["minio"]["status"] == "enabled"
    assert status["jenkins"]["status"] == "enabled"
    assert component(cc, "openldap")["reason"].startswith("needed by")
    for name in ("devops-apiserver", "devops-controller", "devops-jenkins"):
        assert available(cluster, "Deployment", name, DEVOPS_NS)
    assert available(cluster, "StatefulSet", "openldap", NS)
    assert available(cluster, "Deployment", "minio", NS)

    patch(cluster, "/spec/devops/enabled", False)
    cc = wait_ready(cluster, timeout=900)
    for name in ("devops-apiserver", "devops-controller", "devops-jenkins"):
        assert absent(cluster, name, DEVOPS_NS)
    assert component(cc, "devops")["state"] == "Disabled"
    assert "devops" not in cc["status"]
    assert absent(cluster, "minio", NS)


def test_hand_edit_of_kubesphere_config_survives_a_rerun(cluster: Cluster, platform: Operator) -> None:
    wait_ready(cluster)
    core = client.CoreV1Api(cluster.api)
    doc = yaml.safe_load(core.read_namespaced_config_map("kubesphere-config", NS).data["kubesphere.yaml"])
    doc["authentication"]["maximumClockSkew"] = "30s"
    core.patch_namespaced_config_map(
        "kubesphere-config", NS, {"data": {"kubesphere.yaml": yaml.safe_dump(doc)}}
    )
    patch(cluster, "/spec/common/core/console/enableMultiLogin", False)  # a spec change that re-runs core
    wait_ready(cluster)
    after = yaml.safe_load(core.read_namespaced_config_map("kubesphere-config", NS).data["kubesphere.yaml"])
    assert after["authentication"]["maximumClockSkew"] == "30s"
    assert after["authentication"]["multipleLogin"] is False


def test_rerun_with_nothing_changed_changes_nothing(cluster: Cluster, platform: Operator) -> None:
    before = wait_ready(cluster)
    platform.stop()
    offset = len(platform.log())
    platform.start()
    # The first pass plans nothing, writes the status if it differs, then prints the banner:
    # once the banner is logged, any run or write that pass made has happened.
    seen = platform.wait_log("nothing to do", after=offset, timeout=120)
    platform.wait_log("all enabled components are ready", after=seen, timeout=60)
    assert " installing" not in platform.log()[offset:]
    assert get_cc(cluster)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
