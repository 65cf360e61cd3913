"""ks_core: CRDs, built-in roles, kubesphere-config (merged), kubesphere-secret, workloads."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from controllers import devops, groupbindings, namespaces, operator, users, workspaces
from tests.conftest import Cluster
from tests.roles.conftest import RoleRunner, role_request, sample_spec

pytestmark = pytest.mark.cluster

NS = "kubesphere-system"


def config(cluster: Cluster) -> dict[str, Any]:
    cm = client.CoreV1Api(cluster.api).read_namespaced_config_map("kubesphere-config", NS)
    doc: dict[str, Any] = yaml.safe_load(cm.data["kubesphere.yaml"])
    return doc


def secret(cluster: Cluster) -> dict[str, str]:
    sec = client.CoreV1Api(cluster.api).read_namespaced_secret("kubesphere-secret", NS)
    return {k: base64.b64decode(v).decode() for k, v in sec.data.items()}


@pytest.fixture(scope="module")
def installed(cluster: Cluster, role_runner: Any) -> Iterator[None]:
    yield
    # Leave nothing behind for the next module (data included).
    spec = sample_spec()
    spec["persistence"]["deleteDataOnDisable"] = True
    role_runner.run(role_request("core", "uninstall", spec=spec))


def test_install_creates_the_platform_core(cluster: Cluster, run_role: RoleRunner, installed: None) -> None:
    run_role("core")
    ext = client.ApiextensionsV1Api(cluster.api)
    names = {c.metadata.name for c in ext.list_custom_resource_definition().items}
    for crd in (
        "users.iam.kubesphere.io",
        "globalroles.iam.kubesphere.io",
        "workspacetemplates.tenant.kubesphere.io",
        "devopsprojects.devops.kubesphere.io",
        "loginrecords.iam.kubesphere.io",
    ):
        assert crd in names
    custom = client.CustomObjectsApi(cluster.api)
    roles = {
        r["metadata"]["name"]
        for r in custom.list_cluster_custom_object("iam.kubesphere.io", "v1alpha2", "globalroles")["items"]
    }
    assert {
        "platform-admin",
        "platform-regular",
        "platform-self-provisioner",
        "anonymous",
        "authenticated",
    } <= roles
    # KubeSphere 3.4's system workspace holds the platform's and the cluster's own namespaces.
    system = custom.get_cluster_custom_object(
        "tenant.kubesphere.io", "v1alpha2", "workspacetemplates", "system-workspace"
    )
    assert system["spec"]["template"]["spec"]["manager"] == "admin"
    for ns in ("default", "kube-public", "kube-system", NS):
        labels = client.CoreV1Api(cluster.api).read_namespace(ns).metadata.labels
        assert labels["kubesphere.io/workspace"] == "system-workspace", ns
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    for name in ("cluster-admin", "cluster-viewer"):
        notes = rbac.read_cluster_role(name).metadata.annotations
        assert "role-template-view-members" in notes["iam.kubesphere.io/aggregation-roles"], name
    admin = custom.get_cluster_custom_object("iam.kubesphere.io", "v1alpha2", "users", "admin")
    assert admin["metadata"]["annotations"]["iam.kubesphere.io/globalrole"] == "platform-admin"

    values = secret(cluster)
    assert len(values["secret"]) >= 32 and len(values["initAdminPassword"]) >= 12
    # The admin user starts with that password (ks-controller-manager, not running here, hashes it).
    assert admin["spec"]["password"] == values["initAdminPassword"]
    raw = (
        client.CoreV1Api(cluster.api)
        .read_namespaced_config_map("kubesphere-config", NS)
        .data["kubesphere.yaml"]
    )
    assert values["secret"] not in raw and values["initAdminPassword"] not in raw
    cfg = config(cluster)
    assert cfg["authentication"]["multipleLogin"] is True
    assert cfg["cache"] == {"type": "inmemory"}

    apps = client.AppsV1Api(cluster.api)
    for name in ("ks-apiserver", "ks-controller-manager", "ks-console"):
        d = apps.read_namespaced_deployment(name, NS)
        assert d.status.available_replicas == d.spec.replicas
    console = client.CoreV1Api(cluster.api).read_namespaced_service("ks-console", NS)
    assert console.spec.type == "NodePort" and console.spec.ports[0].node_port == 30880
    apiserver = apps.read_namespaced_deployment("ks-apiserver", NS).spec.template.spec.containers[0]
    assert apiserver.command[0] == "ks-apiserver"
    assert apiserver.image == "kubesphere/ks-installer:v0.2.0"


def test_second_run_changes_nothing_and_keeps_secrets(
    cluster: Cluster, run_role: RoleRunner, installed: None
) -> None:
    before = secret(cluster)
    result = run_role("core")
    assert result.progress.changed == 0
    assert secret(cluster) == before
    # The admin user is created once and left alone afterwards; core's record keeps it.
    record = client.CoreV1Api(cluster.api).read_namespaced_config_map(
        "ks-installer-inventory-core", "kubesphere-system"
    )
    listed = {(o["kind"], o["name"]) for o in json.loads(record.data["objects.json"])}
    assert ("User", "admin") in listed and ("Deployment", "ks-apiserver") in listed
    assert run_role("core", check=True).progress.changed == 0


def test_hand_edits_of_kubesphere_config_survive(
    cluster: Cluster, run_role: RoleRunner, installed: None
) -> None:
    core = client.CoreV1Api(cluster.api)
    cfg = config(cluster)
    cfg["authentication"]["maximumClockSkew"] = "20s"  # edited by hand
    cfg["notification"] = {"endpoint": "http://notification-manager-svc:19093"}  # added by hand
    core.patch_namespaced_config_map(
        "kubesphere-config", NS, {"data": {"kubesphere.yaml": yaml.safe_dump(cfg)}}
    )

    spec = sample_spec()
    spec["common"]["core"]["console"]["enableMultiLogin"] = False  # a spec change at the same time
    spec["common"]["redis"]["enabled"] = True
    run_role("core", spec=spec)
    after = config(cluster)
    assert after["authentication"]["maximumClockSkew"] == "20s"
    assert after["notification"] == {"endpoint": "http://notification-manager-svc:19093"}
    assert after["authentication"]["multipleLogin"] is False
    assert after["cache"]["type"] == "redis"
    assert run_role("core", spec=spec).progress.changed == 0


def test_jinja_in_the_spec_is_not_evaluated(cluster: Cluster, run_role: RoleRunner, installed: None) -> None:
    spec = sample_spec()
    spec["authentication"]["loginHistoryRetentionPeriod"] = "{{ 7 * 6 }}h"
    run_role("core", spec=spec)
    assert config(cluster)["authentication"]["loginHistoryRetentionPeriod"] == "{{ 7 * 6 }}h"
    run_role("core")


def test_uninstall_releases_only_the_controller_managers_finalizers(
    cluster: Cluster, run_role: RoleRunner, installed: None
) -> None:
    """With ks-controller-manager gone nothing removes its finalizers; uninstall must, and only those."""
    run_role("core")
    core = client.CoreV1Api(cluster.api)
    custom = client.CustomObjectsApi(cluster.api)
    ns = "t-finalized"
    core.create_namespace(
        {"metadata": {"name": ns, "finalizers": ["finalizers.kubesphere.io/namespaces", "example.com/keep"]}}
    )
    try:
        ours = ["finalizers.kubesphere.io/users", "controllers.kubesphere.io/cleanup"]
        custom.patch_cluster_custom_object(
            "iam.kubesphere.io", "v1alpha2", "users", "admin", {"metadata": {"finalizers": ours}}
        )
        spec = sample_spec()
        spec["persistence"]["deleteDataOnDisable"] = True  # the CRDs go, so the admin User must go too
        result = run_role("core", "uninstall", spec=spec)
        # The first pass hands what waits for those finalizers to the second: nothing is left.
        assert result.leftovers == []
        assert core.read_namespace(ns).metadata.finalizers == ["example.com/keep"]
        ext = client.ApiextensionsV1Api(cluster.api)
        with pytest.raises(client.ApiException) as gone:
            ext.read_custom_resource_definition("users.iam.kubesphere.io")
        assert gone.value.status == 404
    finally:
        core.patch_namespace(ns, {"metadata": {"finalizers": None}})
        core.delete_namespace(ns)


def test_uninstall_knows_every_finalizer_the_controllers_add() -> None:
    """roles/ks_core/vars/main.yml lists what ks-controller-manager adds; a new one must be added there."""
    listed = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "roles" / "ks_core" / "vars" / "main.yml").read_text()
    )["ks_core_controller_finalizers"]
    used = {
        devops.FINALIZER, groupbindings.FINALIZER, namespaces.FINALIZER, operator.FINALIZER, users.FINALIZER,
        workspaces.TEMPLATE_FINALIZER, workspaces.WORKSPACE_FINALIZER,
    }  # fmt: skip
    assert set(listed) == used
