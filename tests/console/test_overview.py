"""The console's overview cards: quotas and abnormal workloads (resources v1alpha2), and GPU kinds.

A project gets a ResourceQuota (kube-controller-manager fills its status), a Deployment KWOK makes
Ready, a Deployment no node can take (its pods stay Pending), and a claim of a storage class that does
not exist (it stays Pending); the console's calls must count them as KubeSphere does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from tests.apiserver.conftest import GPU_KINDS, ApiServer, Monitoring
from tests.conftest import Cluster
from tests.console.support import call
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster
RES2 = "/kapis/resources.kubesphere.io/v1alpha2"


def _deployment(name: str, *, replicas: int, selector: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "registry.invalid/none:1"}]}
    if selector:
        spec["nodeSelector"] = selector
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
        },
    }


def admitted(create: Callable[..., Any], namespace: str, body: dict[str, Any]) -> None:
    """``create``, retried while the quota admission has not caught up with the quota's status."""

    def attempt() -> bool:
        try:
            create(namespace, body)
        except client.ApiException as exc:
            if exc.status == 403 and "status unknown for quota" in str(exc.body):
                return False
            raise
        return True

    wait_for(attempt, timeout=30, what=f"{body['metadata']['name']} to be admitted under the quota")


def get(server: ApiServer, token: str, path: str) -> Any:
    resp = call(server, "GET", path, token)
    assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text}"
    return resp.json()


def test_project_quotas_and_abnormal_workloads(
    monitoring: Monitoring, cluster: Cluster, namespace: str
) -> None:
    core, apps = client.CoreV1Api(cluster.api), client.AppsV1Api(cluster.api)
    hard = {"count/deployments.apps": "5", "pods": "10", "requests.storage": "2Gi"}
    core.create_namespaced_resource_quota(namespace, {"metadata": {"name": "limits"}, "spec": {"hard": hard}})
    # Objects admitted before the quota is in effect are only counted at the controller's next full
    # resync (minutes): wait for its status first, as a user would see it in effect.
    wait_for(
        lambda: (core.read_namespaced_resource_quota("limits", namespace).status.hard or {}) == hard,
        timeout=60,
        what="kube-controller-manager to fill the quota's status",
    )
    admitted(apps.create_namespaced_deployment, namespace, _deployment("ready", replicas=1))
    stuck = _deployment("stuck", replicas=1, selector={"no-such": "node"})
    admitted(apps.create_namespaced_deployment, namespace, stuck)
    admitted(
        core.create_namespaced_persistent_volume_claim,
        namespace,
        {
            "metadata": {"name": "claim"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "no-such-class",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    server, token = monitoring.server, monitoring.token

    want = {"count/deployments.apps": "2", "pods": "2", "requests.storage": "1Gi"}
    seen: dict[str, Any] = {}

    def quotas() -> dict[str, Any] | None:
        body = get(server, token, f"{RES2}/namespaces/{namespace}/quotas")
        seen.update(body["data"].get("used", {}))
        return body if all(seen.get(k) == v for k, v in want.items()) else None

    try:
        body = wait_for(quotas, timeout=60, what="the quota to count both deployments and their pods")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; used was {seen}") from None
    assert body["namespace"] == namespace
    data = body["data"]
    assert data["hard"] == hard
    assert data["left"] == {"count/deployments.apps": "3", "pods": "8", "requests.storage": "1Gi"}
    # Kinds no quota tracks are counted all the same.
    assert data["used"]["count/services"] == "0" and data["used"]["persistentvolumeclaims"] == "1"
    assert data["used"]["count/s2ibuilders.devops.kubesphere.io"] == "0"

    def abnormal() -> dict[str, Any] | None:
        body = get(server, token, f"{RES2}/namespaces/{namespace}/abnormalworkloads")
        ready = apps.read_namespaced_deployment(name="ready", namespace=namespace).status.ready_replicas
        return body if ready == 1 and body["data"]["deployments"] == 1 else None

    body = wait_for(abnormal, timeout=60, what="the ready deployment to be Ready and the stuck one counted")
    assert body == {
        "namespace": namespace,
        "data": {
            "deployments": 1,
            "statefulsets": 0,
            "daemonsets": 0,
            "jobs": 0,
            "persistentvolumeclaims": 1,
        },
    }


def test_cluster_quotas_and_abnormal_workloads(monitoring: Monitoring, cluster: Cluster) -> None:
    server, token = monitoring.server, monitoring.token
    core = client.CoreV1Api(cluster.api)

    def counted() -> dict[str, Any] | None:
        body = get(server, token, f"{RES2}/quotas")
        services = len(core.list_service_for_all_namespaces().items)  # in every namespace, not one
        return body if int(body["data"]["used"]["count/services"]) == services else None

    body = wait_for(counted, timeout=20, what="the cluster's services counted")
    assert body["namespace"] == '""' and set(body["data"]) == {"used"}
    abnormal = get(server, token, f"{RES2}/abnormalworkloads")
    assert abnormal["namespace"] == "" and set(abnormal["data"]) == {
        "deployments", "statefulsets", "daemonsets", "jobs", "persistentvolumeclaims",
    }  # fmt: skip


def test_missing_project_is_404(monitoring: Monitoring) -> None:
    for tail in ("quotas", "abnormalworkloads"):
        resp = call(monitoring.server, "GET", f"{RES2}/namespaces/no-such-project/{tail}", monitoring.token)
        assert resp.status_code == 404, resp.text


def test_gpu_kinds(monitoring: Monitoring, apiserver: ApiServer) -> None:
    """The console's session reads them before login: configured kinds, else KubeSphere's null."""
    resp = call(monitoring.server, "GET", "/kapis/config.kubesphere.io/v1alpha2/configs/gpu/kinds")
    assert resp.status_code == 200 and resp.json() == GPU_KINDS
    resp = call(apiserver, "GET", "/kapis/config.kubesphere.io/v1alpha2/configs/gpu/kinds")
    assert resp.status_code == 200 and resp.json() is None
