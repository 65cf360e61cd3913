"""Each component's record of what it applied: written after a successful run only, gone with it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes import client, dynamic

from installer.runs import Runner
from tests.conftest import Cluster
from tests.roles.conftest import RoleRunner
from tests.roles.support import uninstall_with_data

pytestmark = pytest.mark.cluster
NS = "kubesphere-system"


def record(cluster: Cluster, component: str) -> client.V1ConfigMap | None:
    try:
        return client.CoreV1Api(cluster.api).read_namespaced_config_map(
            f"ks-installer-inventory-{component}", NS
        )
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def listed(cm: client.V1ConfigMap) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = json.loads(cm.data["objects.json"])
    return objects


def test_a_run_records_what_it_applied_and_a_failed_run_keeps_the_record(
    cluster: Cluster, run_role: RoleRunner, role_runner: Runner, spec: dict[str, Any]
) -> None:
    spec["common"]["redis"]["enableHA"] = True
    run_role("redis", spec=spec)
    cm = record(cluster, "redis")
    assert cm is not None
    assert cm.metadata.labels["installer.kubesphere.io/inventory"] == "redis"
    assert cm.metadata.labels["app.kubernetes.io/managed-by"] == "ks-installer"
    objects = listed(cm)
    names = {(o["kind"], o["name"]) for o in objects}
    assert {("StatefulSet", "redis-ha-server"), ("Service", "redis-ha"), ("Service", "redis"),
            ("Secret", "redis-secret")} <= names  # fmt: skip
    # References only (the Secret's values never), each naming the live object by uid.
    dyn = dynamic.DynamicClient(cluster.api)
    for ref in objects:
        assert set(ref) <= {"apiVersion", "kind", "namespace", "name", "uid"}
        res = dyn.resources.get(api_version=ref["apiVersion"], kind=ref["kind"])
        live = dyn.get(res, name=ref["name"], namespace=ref.get("namespace"))
        assert live.metadata.uid == ref["uid"], ref

    # A run that fails half-way (an HA volume size cannot change) leaves the record as it was.
    bigger = copy.deepcopy(spec)
    bigger["common"]["redis"]["volumeSize"] = "3Gi"
    failed = run_role("redis", spec=bigger, expect_failure=True)
    assert "volume size" in (failed.message or "").lower() or failed.failed_task
    after = record(cluster, "redis")
    assert after is not None and after.metadata.resource_version == cm.metadata.resource_version

    # A second successful run changes nothing in it; the uninstall takes it away.
    assert run_role("redis", spec=spec).progress.changed == 0
    again = record(cluster, "redis")
    assert again is not None and again.metadata.resource_version == cm.metadata.resource_version
    uninstall_with_data(role_runner, "redis")
    assert record(cluster, "redis") is None
