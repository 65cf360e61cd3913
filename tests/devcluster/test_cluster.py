"""The local control plane behaves like a real cluster: workloads roll out on
KWOK nodes, volumes bind, CRDs work with kubectl, and the garbage collector and
namespace controller delete what they should."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from kubernetes import client, watch

from devcluster import kube
from devcluster.cluster import LocalCluster
from tests.conftest import Cluster
from tests.helpers import kubectl, wait_for

pytestmark = pytest.mark.cluster

LABELS = {"app": "probe"}


def _pod_template() -> dict[str, Any]:
    return {
        "metadata": {"labels": LABELS},
        "spec": {"containers": [{"name": "main", "image": "registry.local/probe:1"}]},
    }


def test_nodes_and_default_storage_class(cluster: Cluster) -> None:
    core = client.CoreV1Api(cluster.api)
    nodes = core.list_node().items
    assert len(nodes) >= 3
    ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)]
    assert len(ready) == len(nodes)
    roles = [n for n in nodes if "node-role.kubernetes.io/control-plane" in n.metadata.labels]
    assert len(roles) == 1
    classes = client.StorageV1Api(cluster.api).list_storage_class().items
    defaults = [
        c.metadata.name
        for c in classes
        if (c.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    assert defaults == [kube.STORAGE_CLASS]


def test_up_twice_reuses_the_running_cluster(cluster: Cluster) -> None:
    info = LocalCluster().up(log=False)
    assert info.reused
    assert info.server == cluster.server


def test_deployment_becomes_available(cluster: Cluster, namespace: str) -> None:
    apps = client.AppsV1Api(cluster.api)
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": LABELS}, "template": _pod_template()},
        },
    )

    def available() -> bool:
        d = apps.read_namespaced_deployment_status("web", namespace)
        return (d.status.available_replicas or 0) == 3

    wait_for(available, what="deployment web with 3 available replicas")
    pods = client.CoreV1Api(cluster.api).list_namespaced_pod(namespace).items
    assert {p.status.phase for p in pods} == {"Running"}
    assert all(p.spec.node_name and p.spec.node_name.startswith("kwok-node-") for p in pods)


def test_statefulset_with_volume_claims_becomes_ready(cluster: Cluster, namespace: str) -> None:
    apps = client.AppsV1Api(cluster.api)
    core = client.CoreV1Api(cluster.api)
    core.create_namespaced_service(
        namespace,
        {"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "selector": LABELS}},
    )
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "metadata": {"name": "db"},
            "spec": {
                "serviceName": "db",
                "replicas": 2,
                "selector": {"matchLabels": LABELS},
                "template": _pod_template(),
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                ],
            },
        },
    )

    def ready() -> bool:
        s = apps.read_namespaced_stateful_set_status("db", namespace)
        return (s.status.ready_replicas or 0) == 2

    wait_for(ready, what="statefulset db with 2 ready replicas")
    pvcs = core.list_namespaced_persistent_volume_claim(namespace).items
    assert sorted(p.metadata.name for p in pvcs) == ["data-db-0", "data-db-1"]
    assert {p.status.phase for p in pvcs} == {"Bound"}
    assert {p.spec.storage_class_name for p in pvcs} == {kube.STORAGE_CLASS}


def test_daemonset_runs_on_every_node(cluster: Cluster, namespace: str) -> None:
    apps = client.AppsV1Api(cluster.api)
    apps.create_namespaced_daemon_set(
        namespace,
        {
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": LABELS}, "template": _pod_template()},
        },
    )
    nodes = len(client.CoreV1Api(cluster.api).list_node().items)

    def ready() -> bool:
        s = apps.read_namespaced_daemon_set_status("agent", namespace).status
        return s.desired_number_scheduled == nodes and s.number_ready == nodes

    wait_for(ready, what=f"daemonset agent ready on {nodes} nodes")


def test_job_completes(cluster: Cluster, namespace: str) -> None:
    batch = client.BatchV1Api(cluster.api)
    template = _pod_template()
    template["spec"]["restartPolicy"] = "Never"
    batch.create_namespaced_job(
        namespace, {"metadata": {"name": "once"}, "spec": {"backoffLimit": 0, "template": template}}
    )

    def complete() -> bool:
        j = batch.read_namespaced_job_status("once", namespace)
        return (j.status.succeeded or 0) == 1 and any(
            c.type == "Complete" and c.status == "True" for c in (j.status.conditions or [])
        )

    wait_for(complete, what="job once to complete")


def _create_crd(cluster: Cluster, group: str) -> str:
    ext = client.ApiextensionsV1Api(cluster.api)
    plural = "widgets"
    name = f"{plural}.{group}"
    ext.create_custom_resource_definition(
        {
            "metadata": {"name": name},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": plural, "singular": "widget", "kind": "Widget", "shortNames": ["wg"]},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {
                                            "enabled": {"type": "boolean"},
                                            "size": {"type": "integer"},
                                        },
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        }
    )

    def established() -> bool:
        crd = ext.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))

    wait_for(established, what=f"CRD {name} to be established")
    return name


def test_crd_patched_with_kubectl_is_seen_by_a_watch(cluster: Cluster, namespace: str) -> None:
    group = f"t{uuid.uuid4().hex[:6]}.example.com"
    crd_name = _create_crd(cluster, group)
    custom = client.CustomObjectsApi(cluster.api)
    try:
        obj = custom.create_namespaced_custom_object(
            group,
            "v1",
            namespace,
            "widgets",
            {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "metadata": {"name": "w1"},
                "spec": {"enabled": False, "size": 1},
            },
        )
        seen: list[dict[str, Any]] = []
        started = threading.Event()

        def watch_changes() -> None:
            w = watch.Watch()
            stream = w.stream(
                custom.list_namespaced_custom_object,
                group,
                "v1",
                namespace,
                "widgets",
                resource_version=obj["metadata"]["resourceVersion"],
                timeout_seconds=30,
            )
            started.set()
            for event in stream:
                if event["type"] == "MODIFIED":
                    seen.append(event["object"])
                    w.stop()

        watcher = threading.Thread(target=watch_changes, daemon=True)
        watcher.start()
        started.wait(10)
        patch = [{"op": "replace", "path": "/spec/enabled", "value": True}]
        # The full resource name: a short name may still map to an older test's group in
        # kubectl's discovery cache.
        resource = f"widgets.{group}"
        kubectl(
            cluster.kubectl,
            cluster.kubeconfig,
            "patch",
            f"-n{namespace}",
            resource,
            "w1",
            "--type=json",
            f"-p={json.dumps(patch)}",
        )
        watcher.join(30)
        assert seen, "the watch saw no MODIFIED event"
        assert seen[0]["spec"] == {"enabled": True, "size": 1}

        # A wrong type is rejected by the API server, naming the field.
        bad = [{"op": "replace", "path": "/spec/enabled", "value": "yes"}]
        result = kubectl(
            cluster.kubectl,
            cluster.kubeconfig,
            "patch",
            f"-n{namespace}",
            resource,
            "w1",
            "--type=json",
            f"-p={json.dumps(bad)}",
            check=False,
        )
        assert result.returncode != 0
        assert "spec.enabled" in result.stderr
    finally:
        client.ApiextensionsV1Api(cluster.api).delete_custom_resource_definition(crd_name)


def test_deleting_a_namespace_removes_its_objects(cluster: Cluster) -> None:
    core = client.CoreV1Api(cluster.api)
    apps = client.AppsV1Api(cluster.api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    core.create_namespaced_config_map(name, {"metadata": {"name": "settings"}, "data": {"a": "1"}})
    apps.create_namespaced_deployment(
        name,
        {
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": LABELS}, "template": _pod_template()},
        },
    )
    wait_for(lambda: len(core.list_namespaced_pod(name).items) == 2, what="2 pods in the namespace")
    core.delete_namespace(name)

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except client.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=120, what=f"namespace {name} to be deleted")
    assert not [p for p in core.list_pod_for_all_namespaces().items if p.metadata.namespace == name]


def test_owner_reference_cascade(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    for i in range(3):
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": f"child-{i}", "ownerReferences": [ref]}}
        )
    core.delete_namespaced_config_map("owner", namespace)

    def children_gone() -> bool:
        names = {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}
        return not any(n.startswith("child-") for n in names)

    wait_for(children_gone, what="dependents of the deleted owner to be collected")
