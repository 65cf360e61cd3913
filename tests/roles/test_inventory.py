"""Each component's record of what it applied: written after a successful run only; what an
uninstall removes (and the data policy keeps), what an install prunes, what a removal leaves."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes import client, dynamic

from installer.runs import Runner
from tests.conftest import Cluster
from tests.helpers import wait_for
from tests.roles.conftest import RoleRunner
from tests.roles.support import exists as found
from tests.roles.support import run_once, uninstall_with_data

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
        assert set(ref) <= {"apiVersion", "kind", "namespace", "name", "uid", "data"}
        # The Secret the data was initialised with is marked as data: a disable keeps it.
        assert ref.get("data", False) is (ref["kind"] == "Secret"), ref
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


def ref_of(obj: Any) -> dict[str, Any]:
    out = {"apiVersion": obj.api_version, "kind": obj.kind, "name": obj.metadata.name}
    out["uid"] = obj.metadata.uid
    if obj.metadata.namespace:
        out["namespace"] = obj.metadata.namespace
    return out


def add_to_record(cluster: Cluster, component: str, refs: list[dict[str, Any]]) -> None:
    """As if an earlier version had rendered these objects too."""
    cm = record(cluster, component)
    assert cm is not None
    body = {"data": {"objects.json": json.dumps(listed(cm) + refs)}}
    client.CoreV1Api(cluster.api).patch_namespaced_config_map(cm.metadata.name, NS, body)


def config_map(cluster: Cluster, name: str, labels: dict[str, str]) -> client.V1ConfigMap:
    core = client.CoreV1Api(cluster.api)
    try:  # left by an interrupted run of the test
        core.delete_namespaced_config_map(name, NS)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    created: client.V1ConfigMap = core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data={"a": "b"})
    )
    return created


def exists(cluster: Cluster, kind: str, name: str) -> bool:
    core = client.CoreV1Api(cluster.api)
    read = {"ConfigMap": core.read_namespaced_config_map, "Secret": core.read_namespaced_secret,
            "Service": core.read_namespaced_service,
            "PersistentVolumeClaim": core.read_namespaced_persistent_volume_claim}[kind]  # fmt: skip
    return found(read, name, NS)


OPENLDAP = {"app.kubernetes.io/managed-by": "ks-installer", "app.kubernetes.io/component": "openldap"}


def test_an_install_prunes_what_it_no_longer_applies_and_a_disable_keeps_only_the_data(
    cluster: Cluster, run_role: RoleRunner, role_runner: Runner
) -> None:
    core = client.CoreV1Api(cluster.api)
    run_role("openldap")
    # What an older version rendered: a ConfigMap and a volume; and a record entry whose
    # object was re-created under the same name since (another uid).
    old = config_map(cluster, "openldap-old-settings", OPENLDAP)
    volume = core.create_namespaced_persistent_volume_claim(NS, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="openldap-old-volume", labels=OPENLDAP),
        spec=client.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"],
                                                resources={"requests": {"storage": "1Gi"}}),
    ))  # fmt: skip
    reused = config_map(cluster, "openldap-reused", {})
    stale = {**ref_of(reused), "uid": "not-its-uid"}
    add_to_record(cluster, "openldap", [ref_of(old), ref_of(volume), stale])
    try:
        run_role("openldap")
        assert not exists(cluster, "ConfigMap", "openldap-old-settings")
        assert exists(cluster, "PersistentVolumeClaim", "openldap-old-volume")  # data: kept
        assert exists(cluster, "ConfigMap", "openldap-reused")  # not the object recorded: left alone
        names = {(o["kind"], o["name"]) for o in listed(record(cluster, "openldap"))}  # type: ignore[arg-type]
        assert ("PersistentVolumeClaim", "openldap-old-volume") in names
        assert ("ConfigMap", "openldap-old-settings") not in names
        assert ("ConfigMap", "openldap-reused") not in names
        assert ("StatefulSet", "openldap") in names

        # A disable removes everything recorded but the data; the record keeps what stayed.
        run_role("openldap", "uninstall")
        kept = {(o["kind"], o["name"]) for o in listed(record(cluster, "openldap"))}  # type: ignore[arg-type]
        assert kept == {("Secret", "openldap-secret"), ("PersistentVolumeClaim", "openldap-old-volume")}
        assert not exists(cluster, "Service", "openldap")
        assert exists(cluster, "Secret", "openldap-secret")
        # The next enable finds the kept data's Secret in the record and applies it again.
        run_role("openldap")
        assert exists(cluster, "Service", "openldap")
    finally:
        core.delete_namespaced_config_map("openldap-reused", NS)
        uninstall_with_data(role_runner, "openldap")
    assert record(cluster, "openldap") is None
    assert not exists(cluster, "PersistentVolumeClaim", "openldap-old-volume")
    assert not exists(cluster, "Secret", "openldap-secret")


def test_without_a_record_an_install_adopts_what_carries_its_labels(
    cluster: Cluster, run_role: RoleRunner, role_runner: Runner
) -> None:
    core = client.CoreV1Api(cluster.api)
    run_role("openldap")
    core.delete_namespaced_config_map("ks-installer-inventory-openldap", NS)

    def service(name: str, labels: dict[str, str]) -> None:
        spec = client.V1ServiceSpec(ports=[client.V1ServicePort(port=389)], selector={"x": "y"})
        meta = client.V1ObjectMeta(name=name, labels=labels)
        core.create_namespaced_service(NS, client.V1Service(metadata=meta, spec=spec))

    # Of a kind the role applies (Service), with its labels: what an older version rendered.
    service("openldap-legacy", OPENLDAP)
    service("other-component", {**OPENLDAP, "app.kubernetes.io/component": "redis"})
    config_map(cluster, "openldap-not-a-kind-it-applies", OPENLDAP)
    try:
        run_role("openldap")
        assert not exists(cluster, "Service", "openldap-legacy")
        assert exists(cluster, "Service", "other-component")
        assert exists(cluster, "ConfigMap", "openldap-not-a-kind-it-applies")
        assert record(cluster, "openldap") is not None
    finally:
        core.delete_namespaced_service("other-component", NS)
        core.delete_namespaced_config_map("openldap-not-a-kind-it-applies", NS)
        uninstall_with_data(role_runner, "openldap")


def test_what_a_removal_cannot_remove_is_reported_and_stays_in_the_record(
    cluster: Cluster, run_role: RoleRunner, role_runner: Runner
) -> None:
    core = client.CoreV1Api(cluster.api)
    run_role("openldap")
    hold = {"metadata": {"finalizers": ["test.kubesphere.io/hold"]}}
    core.patch_namespaced_service("openldap", NS, hold)
    try:
        result = run_once(role_runner, "openldap", "uninstall", extra={"ks_remove_timeout": 2})
        assert [(x["kind"], x["name"]) for x in result.leftovers] == [("Service", "openldap")]
        assert "test.kubesphere.io/hold" in result.leftovers[0]["reason"]
        names = {(o["kind"], o["name"]) for o in listed(record(cluster, "openldap"))}  # type: ignore[arg-type]
        assert ("Service", "openldap") in names and ("StatefulSet", "openldap") not in names
    finally:
        # A JSON patch: a strategic merge patch merges the finalizers list and removes nothing.
        core.patch_namespaced_service("openldap", NS, [{"op": "remove", "path": "/metadata/finalizers"}])
    uninstall_with_data(role_runner, "openldap")
    assert record(cluster, "openldap") is None and not exists(cluster, "Service", "openldap")


#: Every component a disable can switch off, dependencies first.
SWITCHABLE = ("openldap", "minio", "redis", "jenkins", "devops", "monitoring")
#: What the data policy keeps of them: (kind, name); namespaces always stay.
DATA = {("Secret", "openldap-secret"), ("Secret", "minio-secret"), ("Secret", "redis-secret"),
        ("Secret", "devops-jenkins"), ("PersistentVolumeClaim", "minio"),
        ("PersistentVolumeClaim", "redis-pvc"), ("PersistentVolumeClaim", "devops-jenkins"),
        # From the StatefulSets' claim templates (no record lists them; they carry its labels).
        ("PersistentVolumeClaim", "openldap-pvc-openldap-0"),
        ("PersistentVolumeClaim", "prometheus-k8s-db-prometheus-k8s-0")}  # fmt: skip


def labelled(cluster: Cluster) -> set[tuple[str, str]]:
    """(kind, name) of everything in the cluster labelled as one of those components' objects."""
    dyn = dynamic.DynamicClient(cluster.api)
    selector = (
        f"app.kubernetes.io/managed-by=ks-installer,app.kubernetes.io/component in ({','.join(SWITCHABLE)})"
    )
    found = set()
    for res in dyn.resources.search():
        if "list" not in (res.verbs or []) or "/" in res.name or res.kind.endswith("List"):
            continue
        if res.kind in ("Event", "ComponentStatus", "Binding") or res.group in ("metrics.k8s.io",):
            continue
        try:
            items = dyn.get(res, label_selector=selector).items
        except Exception:  # a kind that cannot be listed cluster-wide here
            continue
        found |= {(res.kind, item.metadata.name) for item in items}
    return found


def test_a_disable_of_every_component_leaves_only_what_the_data_policy_keeps(
    cluster: Cluster, run_role: RoleRunner, role_runner: Runner, spec: dict[str, Any]
) -> None:
    spec["devops"]["enabled"] = True
    for component in SWITCHABLE:
        run_role(component, spec=spec)
    assert len(labelled(cluster)) > len(DATA)
    try:
        for component in reversed(SWITCHABLE):
            run_role(component, "uninstall", spec=spec)

        def left() -> set[tuple[str, str]]:
            return {(kind, name) for kind, name in labelled(cluster) if kind != "Namespace"}

        # Dependents the garbage collector removes (endpoint slices, revisions) may take a moment.
        try:
            wait_for(lambda: left() <= DATA, timeout=120, what="only the data to be left", interval=1)
        except AssertionError:
            raise AssertionError(f"left behind: {sorted(left() - DATA)}") from None
        assert left() == DATA
    finally:
        for component in reversed(SWITCHABLE):
            uninstall_with_data(role_runner, component)
    assert {kind for kind, _ in labelled(cluster)} <= {"Namespace"}
    for component in SWITCHABLE:
        assert record(cluster, component) is None
