"""monitoring: Prometheus, node-exporter, kube-state-metrics and Alertmanager as plain manifests.

Each test sets up the state it starts from, so any one passes alone and in any order:
``absent`` removes the stack (not through the role), ``installed`` installs it with the
sample spec (a run that changes nothing when the previous test left it so, as in file
order). A module fixture removes what is left.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from installer.runs import Runner
from tests.conftest import Cluster
from tests.roles.conftest import RoleRunner
from tests.roles.support import run_once

pytestmark = pytest.mark.cluster

NS = "kubesphere-monitoring-system"
SELECTOR = "app.kubernetes.io/component=monitoring,app.kubernetes.io/managed-by=ks-installer"
LABELS = {
    "app.kubernetes.io/component": "monitoring",
    "app.kubernetes.io/managed-by": "ks-installer",
    "app.kubernetes.io/part-of": "kubesphere",
}
DEPLOYMENTS = ["kube-state-metrics", "prometheus-operator"]
STATEFULSETS = ["prometheus-k8s", "alertmanager-main"]
DAEMONSETS = ["node-exporter"]
SERVICES = {
    "prometheus-k8s": 9090,
    "prometheus-operated": 9090,
    "alertmanager-main": 9093,
    "alertmanager-operated": 9093,
    "kube-state-metrics": 8080,
    "node-exporter": 9100,
}
CLUSTER_RBAC = [
    "kubesphere-prometheus-k8s",
    "kubesphere-kube-state-metrics",
    "kubesphere-node-exporter",
    "kubesphere-prometheus-operator",
]


def _gone(read: Callable[..., Any], *args: str) -> bool:
    try:
        read(*args)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def _eventually(check: Callable[[], bool], timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def _namespace_exists(core: client.CoreV1Api) -> bool:
    return not _gone(core.read_namespace, NS)


def _ours(cluster: Cluster) -> dict[str, list[str]]:
    """Every object of the role that exists now, by kind (PVCs apart)."""
    core = client.CoreV1Api(cluster.api)
    apps = client.AppsV1Api(cluster.api)
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    found: dict[str, list[str]] = {}
    listers: dict[str, Callable[..., Any]] = {
        "Deployment": apps.list_namespaced_deployment,
        "StatefulSet": apps.list_namespaced_stateful_set,
        "DaemonSet": apps.list_namespaced_daemon_set,
        "Service": core.list_namespaced_service,
        "ConfigMap": core.list_namespaced_config_map,
        "Secret": core.list_namespaced_secret,
        "ServiceAccount": core.list_namespaced_service_account,
    }
    for kind, lister in listers.items():
        found[kind] = [o.metadata.name for o in lister(NS, label_selector=SELECTOR).items]
    found["ClusterRole"] = [
        r.metadata.name for r in rbac.list_cluster_role().items if r.metadata.name in CLUSTER_RBAC
    ]
    found["ClusterRoleBinding"] = [
        r.metadata.name for r in rbac.list_cluster_role_binding().items if r.metadata.name in CLUSTER_RBAC
    ]
    return {kind: names for kind, names in found.items() if names}


def _pvcs(cluster: Cluster) -> list[client.V1PersistentVolumeClaim]:
    core = client.CoreV1Api(cluster.api)
    items: list[client.V1PersistentVolumeClaim] = core.list_namespaced_persistent_volume_claim(
        NS, label_selector=SELECTOR
    ).items
    return items


def _remove_everything(cluster: Cluster) -> None:
    """Delete the role's objects and PVCs directly (not through the role under test)."""
    core = client.CoreV1Api(cluster.api)
    apps = client.AppsV1Api(cluster.api)
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    for name in CLUSTER_RBAC:
        for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
            try:
                delete(name)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
    if not _namespace_exists(core):
        return
    foreground = client.V1DeleteOptions(propagation_policy="Foreground")
    for delete_collection in (
        apps.delete_collection_namespaced_deployment,
        apps.delete_collection_namespaced_stateful_set,
        apps.delete_collection_namespaced_daemon_set,
    ):
        delete_collection(NS, label_selector=SELECTOR, body=foreground)
    for delete_collection in (
        core.delete_collection_namespaced_service,
        core.delete_collection_namespaced_config_map,
        core.delete_collection_namespaced_secret,
        core.delete_collection_namespaced_service_account,
        core.delete_collection_namespaced_persistent_volume_claim,
    ):
        delete_collection(NS, label_selector=SELECTOR)
    _eventually(lambda: not _ours(cluster) and not _pvcs(cluster), what="the monitoring objects to go")


@pytest.fixture(scope="module", autouse=True)
def clean_slate(cluster: Cluster) -> Iterator[None]:
    """Start without the monitoring stack; remove it (and a namespace made here) afterwards."""
    core = client.CoreV1Api(cluster.api)
    _remove_everything(cluster)
    namespace_was_there = _namespace_exists(core)
    yield
    _remove_everything(cluster)
    if not namespace_was_there and _namespace_exists(core):
        core.delete_namespace(NS)


@pytest.fixture
def absent(cluster: Cluster) -> None:
    """The monitoring stack is not installed (its namespace may be there)."""
    _remove_everything(cluster)


@pytest.fixture
def installed(role_runner: Runner) -> None:
    """The monitoring stack is installed with the sample spec."""
    run_once(role_runner, "monitoring")


def _set(spec: dict[str, Any], path: str, value: Any) -> None:
    node = spec
    *parents, leaf = path.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value


def _assert_running(cluster: Cluster, *, prometheus_replicas: int = 1) -> None:
    apps = client.AppsV1Api(cluster.api)
    core = client.CoreV1Api(cluster.api)
    for name in DEPLOYMENTS:
        deployment = apps.read_namespaced_deployment(name, NS)
        available = {c.type: c.status for c in deployment.status.conditions or []}.get("Available")
        assert available == "True", f"Deployment {name} is not Available"
        assert deployment.status.available_replicas == deployment.spec.replicas, name
    for name in STATEFULSETS:
        sts = apps.read_namespaced_stateful_set(name, NS)
        assert sts.status.ready_replicas == sts.spec.replicas, f"StatefulSet {name} is not Ready"
    assert apps.read_namespaced_stateful_set("prometheus-k8s", NS).spec.replicas == prometheus_replicas
    nodes = len(core.list_node().items)
    for name in DAEMONSETS:
        ds = apps.read_namespaced_daemon_set(name, NS)
        assert ds.status.desired_number_scheduled == nodes, f"DaemonSet {name} is not on every node"
        assert ds.status.number_ready == nodes, f"DaemonSet {name} is not Ready on every node"
        assert ds.status.updated_number_scheduled == nodes, f"DaemonSet {name} has not rolled out"

    def all_bound() -> bool:
        pvcs = _pvcs(cluster)
        return len(pvcs) == prometheus_replicas and all(p.status.phase == "Bound" for p in pvcs)

    _eventually(all_bound, what=f"{prometheus_replicas} Bound Prometheus PVCs")


def test_check_mode_before_install_creates_nothing(
    run_role: RoleRunner, cluster: Cluster, absent: None
) -> None:
    run_role("monitoring", check=True)
    assert _ours(cluster) == {}


def test_external_prometheus_installs_nothing(
    run_role: RoleRunner, cluster: Cluster, spec: dict[str, Any], absent: None
) -> None:
    _set(spec, "common.monitoring.type", "external")
    result = run_role("monitoring", spec=spec)
    assert result.progress.changed == 0
    assert _ours(cluster) == {}
    if _namespace_exists(client.CoreV1Api(cluster.api)):
        assert _pvcs(cluster) == []


def test_install(run_role: RoleRunner, cluster: Cluster, absent: None) -> None:
    run_role("monitoring")
    _assert_running(cluster)

    core = client.CoreV1Api(cluster.api)
    apps = client.AppsV1Api(cluster.api)
    objects = _ours(cluster)
    assert sorted(objects["Deployment"]) == sorted(DEPLOYMENTS)
    assert sorted(objects["StatefulSet"]) == sorted(STATEFULSETS)
    assert sorted(objects["ClusterRole"]) == sorted(CLUSTER_RBAC)
    assert sorted(objects["ClusterRoleBinding"]) == sorted(CLUSTER_RBAC)
    assert set(SERVICES) <= set(objects["Service"])
    for name, port in SERVICES.items():
        service = core.read_namespaced_service(name, NS)
        assert port in [p.port for p in service.spec.ports], name
        assert LABELS.items() <= (service.metadata.labels or {}).items(), name
    assert core.read_namespaced_service("prometheus-operated", NS).spec.cluster_ip == "None"

    prometheus = apps.read_namespaced_stateful_set("prometheus-k8s", NS)
    assert LABELS.items() <= prometheus.metadata.labels.items()
    container = prometheus.spec.template.spec.containers[0]
    assert container.image == "prom/prometheus:v2.39.1"
    assert "--storage.tsdb.retention.time=7d" in container.args
    assert container.resources.requests == {"cpu": "200m", "memory": "400Mi"}
    claim = prometheus.spec.volume_claim_templates[0]
    assert claim.spec.resources.requests["storage"] == "20Gi"
    assert claim.spec.storage_class_name is None  # the default StorageClass
    operator = apps.read_namespaced_deployment("prometheus-operator", NS)
    assert operator.spec.template.spec.containers[0].image == "kubesphere/prometheus-operator:v0.55.1"

    data = core.read_namespaced_config_map("prometheus-k8s-config", NS).data
    config = yaml.safe_load(data["prometheus.yml"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # The rule file Prometheus loads holds the rule names the monitoring API asks for.
    assert config["rule_files"] == ["/etc/prometheus/config/recording-rules.yaml"]
    rules = {r["record"] for g in yaml.safe_load(data["recording-rules.yaml"])["groups"] for r in g["rules"]}
    assert {"apiserver:up:sum", "apiserver:apiserver_request_total:sum_irate"} <= rules
    assert {"prometheus", "node-exporter", "kube-state-metrics", "apiserver"} <= set(jobs)
    assert all(job["kubernetes_sd_configs"] for job in jobs.values())

    secret = core.read_namespaced_secret("alertmanager-main", NS)
    alertmanager = yaml.safe_load(base64.b64decode(secret.data["alertmanager.yaml"]))
    assert alertmanager["route"]["receiver"] in [r["name"] for r in alertmanager["receivers"]]

    for pvc in _pvcs(cluster):
        assert LABELS.items() <= pvc.metadata.labels.items()


def test_second_run_changes_nothing(run_role: RoleRunner, installed: None) -> None:
    result = run_role("monitoring")
    assert result.progress.changed == 0


def test_check_mode_after_install_changes_nothing(run_role: RoleRunner, installed: None) -> None:
    result = run_role("monitoring", check=True)
    assert result.progress.changed == 0


def test_spec_changes_show_up(
    run_role: RoleRunner, cluster: Cluster, spec: dict[str, Any], installed: None
) -> None:
    _set(spec, "monitoring.prometheus", {"replicas": 2, "volumeSize": "30Gi"})
    _set(spec, "monitoring.node_exporter.port", 9200)
    result = run_role("monitoring", spec=spec)
    assert result.progress.changed > 0
    _assert_running(cluster, prometheus_replicas=2)

    apps = client.AppsV1Api(cluster.api)
    core = client.CoreV1Api(cluster.api)
    prometheus = apps.read_namespaced_stateful_set("prometheus-k8s", NS)
    assert prometheus.spec.replicas == 2
    assert prometheus.spec.volume_claim_templates[0].spec.resources.requests["storage"] == "30Gi"
    new_claim = core.read_namespaced_persistent_volume_claim("prometheus-k8s-db-prometheus-k8s-1", NS)
    assert new_claim.spec.resources.requests["storage"] == "30Gi"

    node_exporter = apps.read_namespaced_daemon_set("node-exporter", NS).spec.template.spec
    assert node_exporter.host_network and node_exporter.host_pid
    ports = node_exporter.containers[0].ports
    assert [(p.container_port, p.host_port) for p in ports] == [(9200, 9200)]
    assert "--web.listen-address=:9200" in node_exporter.containers[0].args
    assert [p.port for p in core.read_namespaced_service("node-exporter", NS).spec.ports] == [9200]

    again = run_role("monitoring", spec=spec)
    assert again.progress.changed == 0


def test_uninstall_keeps_the_pvcs(run_role: RoleRunner, cluster: Cluster, installed: None) -> None:
    before = sorted(p.metadata.name for p in _pvcs(cluster))
    assert "prometheus-k8s-db-prometheus-k8s-0" in before
    run_role("monitoring", "uninstall")
    assert _ours(cluster) == {}
    apps = client.AppsV1Api(cluster.api)
    for name in DEPLOYMENTS:
        assert _gone(apps.read_namespaced_deployment, name, NS)
    assert sorted(p.metadata.name for p in _pvcs(cluster)) == before
    assert _namespace_exists(client.CoreV1Api(cluster.api))


def test_uninstall_with_delete_data_removes_the_pvcs(
    run_role: RoleRunner, cluster: Cluster, spec: dict[str, Any], installed: None
) -> None:
    assert _pvcs(cluster)
    spec["persistence"]["deleteDataOnDisable"] = True
    run_role("monitoring", "uninstall", spec=spec)
    assert _pvcs(cluster) == []
    assert _ours(cluster) == {}
    assert _namespace_exists(client.CoreV1Api(cluster.api))
