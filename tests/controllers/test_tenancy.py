"""The workspacetemplate, workspace, namespace and devopsproject controllers against the real cluster.

Deleting a workspace removes its namespaces through the garbage collector of
the local kube-controller-manager, following the ownerReferences the
controllers put there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controllers.support import Manager, Objects, unique
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster

IAM = "iam.kubesphere.io/v1alpha2"
TENANT1, TENANT2 = "tenant.kubesphere.io/v1alpha1", "tenant.kubesphere.io/v1alpha2"
DEVOPS = "devops.kubesphere.io/v1alpha3"
RBAC = "rbac.authorization.k8s.io/v1"
WS_LABEL = "kubesphere.io/workspace"
IAM_FILES = Path(__file__).resolve().parents[2] / "roles" / "ks_core" / "files" / "iam"


def new_template(objects: Objects, *, manager: str | None = "alice") -> str:
    name = unique("ws")
    spec: dict[str, Any] = {"manager": manager} if manager else {}
    objects.create(
        {
            "apiVersion": TENANT2,
            "kind": "WorkspaceTemplate",
            "metadata": {"name": name},
            "spec": {"template": {"metadata": {"labels": {"team": "qa"}}, "spec": spec}},
        }
    )
    return name


def new_namespace(objects: Objects, *, workspace: str | None = None, creator: str | None = None) -> str:
    name = unique("ns")
    meta: dict[str, Any] = {"name": name, "labels": {"ks-test": "true"}}
    if workspace:
        meta["labels"][WS_LABEL] = workspace
    if creator:
        meta["annotations"] = {"kubesphere.io/creator": creator}
    objects.create({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    return name


def workspace_owners(objects: Objects, ns: str) -> list[dict[str, Any]]:
    got = objects.get("v1", "Namespace", ns) or {"metadata": {}}
    return [o for o in got["metadata"].get("ownerReferences") or [] if o["kind"] == "Workspace"]


def being_deleted(objects: Objects, ns: str) -> bool:
    """Gone, or deleted and left to the namespace controller (slow when the shared cluster is busy)."""
    got = objects.get("v1", "Namespace", ns)
    return got is None or bool(got["metadata"].get("deletionTimestamp"))


def role_names(objects: Objects, ns: str) -> set[str]:
    return {r["metadata"]["name"] for r in objects.list(RBAC, "Role", namespace=ns)}


def test_template_yields_workspace_roles_and_manager_binding(manager: Manager, objects: Objects) -> None:
    ws = new_template(objects, manager="alice")
    workspace = wait_for(lambda: objects.get(TENANT1, "Workspace", ws), timeout=30, what="Workspace")
    assert workspace["spec"]["manager"] == "alice"
    assert workspace["metadata"]["labels"]["team"] == "qa"
    assert workspace["metadata"]["ownerReferences"][0]["kind"] == "WorkspaceTemplate"
    expected = {f"{ws}-{r}" for r in ("admin", "regular", "viewer", "self-provisioner")}
    wait_for(
        lambda: (
            {r["metadata"]["name"] for r in objects.list(IAM, "WorkspaceRole", labels=f"{WS_LABEL}={ws}")}
            == expected
        ),
        timeout=30,
        what="the four WorkspaceRoles",
    )
    admin = objects.get(IAM, "WorkspaceRole", f"{ws}-admin")
    assert admin["rules"] == [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
    binding = wait_for(
        lambda: objects.get(IAM, "WorkspaceRoleBinding", f"{ws}-admin"), timeout=30, what="manager binding"
    )
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]
    assert binding["roleRef"]["name"] == f"{ws}-admin"
    assert binding["metadata"]["labels"]["iam.kubesphere.io/user-ref"] == "alice"

    # A new manager: the binding follows.
    tpl = objects.get(TENANT2, "WorkspaceTemplate", ws)
    tpl_spec = tpl["spec"]
    tpl_spec["template"]["spec"]["manager"] = "bob"
    objects.patch(TENANT2, "WorkspaceTemplate", ws, {"spec": tpl_spec})
    wait_for(
        lambda: objects.get(IAM, "WorkspaceRoleBinding", f"{ws}-admin")["subjects"][0]["name"] == "bob",
        timeout=30,
        what="binding to the new manager",
    )
    # No manager: no manager binding.
    objects.patch(TENANT2, "WorkspaceTemplate", ws, {"spec": {"template": {"spec": {"manager": None}}}})
    wait_for(
        lambda: objects.get(IAM, "WorkspaceRoleBinding", f"{ws}-admin") is None, timeout=30, what="no binding"
    )


def test_labelled_namespace_gets_owner_roles_and_creator_binding(manager: Manager, objects: Objects) -> None:
    ws = new_template(objects)
    workspace = wait_for(lambda: objects.get(TENANT1, "Workspace", ws), timeout=30, what="Workspace")
    ns = new_namespace(objects, workspace=ws, creator="carol")
    owners = wait_for(lambda: workspace_owners(objects, ns), timeout=30, what="workspace ownerReference")
    assert owners == [
        {
            "apiVersion": TENANT1,
            "kind": "Workspace",
            "name": ws,
            "uid": workspace["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    wait_for(lambda: {"admin", "operator", "viewer"} <= role_names(objects, ns), timeout=30, what="roles")
    got = objects.get("v1", "Namespace", ns)
    assert got["metadata"]["labels"]["kubesphere.io/namespace"] == ns
    assert "finalizers.kubesphere.io/namespaces" in got["metadata"]["finalizers"]
    rb = wait_for(
        lambda: objects.get(RBAC, "RoleBinding", "carol-admin", ns), timeout=30, what="creator binding"
    )
    assert rb["roleRef"]["name"] == "admin" and rb["subjects"][0]["name"] == "carol"

    # Missing reference: repaired.
    objects.patch("v1", "Namespace", ns, {"metadata": {"ownerReferences": None}})
    wait_for(lambda: workspace_owners(objects, ns), timeout=30, what="ownerReference restored")
    # Wrong reference (another workspace than the label says): repaired.
    other = new_template(objects)
    other_ws = wait_for(lambda: objects.get(TENANT1, "Workspace", other), timeout=30, what="second Workspace")
    wrong = {**owners[0], "name": other, "uid": other_ws["metadata"]["uid"]}
    objects.patch("v1", "Namespace", ns, {"metadata": {"ownerReferences": [wrong]}})
    wait_for(
        lambda: [o["name"] for o in workspace_owners(objects, ns)] == [ws],
        timeout=30,
        what="reference repaired",
    )
    # Label moved to the other workspace: the reference follows.
    objects.patch("v1", "Namespace", ns, {"metadata": {"labels": {WS_LABEL: other}}})
    wait_for(lambda: [o["name"] for o in workspace_owners(objects, ns)] == [other], timeout=30, what="moved")
    # Label gone: so is the reference.
    objects.patch("v1", "Namespace", ns, {"metadata": {"labels": {WS_LABEL: None}}})
    wait_for(lambda: workspace_owners(objects, ns) == [], timeout=30, what="reference removed")
    assert objects.get("v1", "Namespace", ns) is not None


def test_namespace_outside_workspaces_gets_no_roles(manager: Manager, objects: Objects) -> None:
    """KubeSphere makes the default Roles only in workspace and DevOps namespaces."""
    ns = new_namespace(objects, creator="erin")
    wait_for(
        lambda: (
            "finalizers.kubesphere.io/namespaces"
            in (objects.get("v1", "Namespace", ns)["metadata"].get("finalizers") or [])
        ),
        timeout=30,
        what="namespace reconciled",
    )
    # The creator binding is made (as KubeSphere does), the Roles are not.
    wait_for(lambda: objects.get(RBAC, "RoleBinding", "erin-admin", ns), timeout=30, what="creator binding")
    assert not {"admin", "operator", "viewer"} & role_names(objects, ns)
    # Put into a workspace later: now it gets them.
    ws = new_template(objects)
    wait_for(lambda: objects.get(TENANT1, "Workspace", ws), timeout=30, what="Workspace")
    objects.patch("v1", "Namespace", ns, {"metadata": {"labels": {WS_LABEL: ws}}})
    wait_for(lambda: {"admin", "operator", "viewer"} <= role_names(objects, ns), timeout=30, what="roles")


def test_deleting_the_workspace_removes_its_namespaces(manager: Manager, objects: Objects) -> None:
    ws = new_template(objects)
    wait_for(lambda: objects.get(TENANT1, "Workspace", ws), timeout=30, what="Workspace")
    inside = [new_namespace(objects, workspace=ws) for _ in range(2)]
    outside = new_namespace(objects)
    for ns in inside:
        wait_for(lambda ns=ns: workspace_owners(objects, ns), timeout=30, what=f"{ns} owned")
    objects.delete(TENANT2, "WorkspaceTemplate", ws)
    wait_for(lambda: objects.get(TENANT1, "Workspace", ws) is None, timeout=30, what="Workspace deleted")
    for ns in inside:
        wait_for(lambda ns=ns: being_deleted(objects, ns), timeout=60, what=f"{ns} deleted")
    assert not objects.list(IAM, "WorkspaceRole", labels=f"{WS_LABEL}={ws}"), "roles go with the template"
    got = objects.get("v1", "Namespace", outside)
    assert got is not None and not got["metadata"].get("deletionTimestamp")


def test_devops_project_gets_its_admin_namespace(manager: Manager, objects: Objects) -> None:
    name = unique("devops")
    objects.create(
        {
            "apiVersion": DEVOPS,
            "kind": "DevOpsProject",
            "metadata": {"name": name, "annotations": {"kubesphere.io/creator": "dave"}},
            "spec": {},
        }
    )
    project = wait_for(
        lambda: (
            (p := objects.get(DEVOPS, "DevOpsProject", name))
            and (p.get("status") or {}).get("adminNamespace")
            and p
        ),
        timeout=30,
        what="status.adminNamespace",
    )
    ns_name = project["status"]["adminNamespace"]
    assert project["metadata"]["annotations"]["devopsproject.devops.kubesphere.io/syncstatus"] == "successful"
    assert "devopsproject.finalizers.kubesphere.io" in project["metadata"]["finalizers"]
    ns = objects.get("v1", "Namespace", ns_name)
    assert ns["metadata"]["labels"]["kubesphere.io/devopsproject"] == name
    assert ns["metadata"]["annotations"]["kubesphere.io/creator"] == "dave"
    assert ns["metadata"]["ownerReferences"][0]["uid"] == project["metadata"]["uid"]
    wait_for(
        lambda: objects.get(RBAC, "RoleBinding", "dave-admin", ns_name), timeout=30, what="creator binding"
    )
    objects.delete(DEVOPS, "DevOpsProject", name)
    wait_for(lambda: objects.get(DEVOPS, "DevOpsProject", name) is None, timeout=30, what="project deleted")
    wait_for(lambda: being_deleted(objects, ns_name), timeout=60, what="admin namespace deleted")


def rolebases(scope: str) -> dict[str, dict[str, Any]]:
    """The Roles the core role's RoleBases of ``scope`` describe, by name."""
    found = {}
    for path in sorted(IAM_FILES.glob("rolebases*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and f"scope.kubesphere.io/{scope}" in (doc["metadata"].get("labels") or {}):
                found[doc["role"]["metadata"]["name"]] = doc["role"]
    return found


@pytest.mark.parametrize("scope", ["namespace", "devops"])
def test_scope_roles_and_templates_follow_the_rolebases(
    manager: Manager, objects: Objects, scope: str
) -> None:
    """Every RoleBase of the scope is a Role in the namespace, with its labels, annotations and rules."""
    if scope == "namespace":
        ws = new_template(objects)
        wait_for(lambda: objects.get(TENANT1, "Workspace", ws), timeout=30, what="Workspace")
        ns = new_namespace(objects, workspace=ws)
    else:
        ns = unique("devns")
        objects.create(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"kubesphere.io/devopsproject": ns}},
            }
        )
    want = rolebases(scope)
    assert {"admin", "operator", "viewer", "role-template-view-basic"} <= set(want)
    wait_for(lambda: set(want) <= role_names(objects, ns), timeout=60, what=f"{len(want)} roles")
    for name, role in want.items():
        got = objects.get(RBAC, "Role", name, ns)
        assert got["rules"] == role["rules"], name
        for key in ("labels", "annotations"):
            expected = role["metadata"].get(key) or {}
            assert {k: got["metadata"].get(key, {}).get(k) for k in expected} == expected, (name, key)
    basic = objects.get(RBAC, "Role", "role-template-view-basic", ns)
    assert basic["metadata"]["labels"]["iam.kubesphere.io/role-template"] == "true"
    assert json.loads(basic["metadata"]["annotations"]["iam.kubesphere.io/role-template-rules"]) == {
        "basic": "view"
    }
    admin = objects.get(RBAC, "Role", "admin", ns)
    assert admin["metadata"]["annotations"]["kubesphere.io/creator"] == "system"
    aggregated = json.loads(admin["metadata"]["annotations"]["iam.kubesphere.io/aggregation-roles"])
    assert set(aggregated) & set(want), "admin aggregates templates of its own scope"
    # A Role edited by hand is brought back to its RoleBase.
    objects.patch(
        RBAC, "Role", "viewer", {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}]}, ns
    )
    objects.patch("v1", "Namespace", ns, {"metadata": {"labels": {"touched": "1"}}})
    wait_for(
        lambda: objects.get(RBAC, "Role", "viewer", ns)["rules"] == want["viewer"]["rules"],
        timeout=30,
        what="viewer restored",
    )


def test_workspace_roles_carry_their_templates(manager: Manager, objects: Objects) -> None:
    ws = new_template(objects)
    admin = wait_for(lambda: objects.get(IAM, "WorkspaceRole", f"{ws}-admin"), timeout=30, what="admin role")
    notes = admin["metadata"]["annotations"]
    assert notes["kubesphere.io/creator"] == "system"
    names = json.loads(notes["iam.kubesphere.io/aggregation-roles"])
    assert "role-template-view-projects" in names and "role-template-manage-members" in names
    for name in names:  # each is a workspace-scope template the permission endpoint can return
        template = objects.get(IAM, "WorkspaceRole", name)
        assert (
            template is not None
            and "iam.kubesphere.io/role-template-rules" in template["metadata"]["annotations"]
        )


def test_devops_project_whose_namespace_is_taken_is_reported(manager: Manager, objects: Objects) -> None:
    name = unique("devops")
    objects.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"x": "y"}}}
    )
    objects.create({"apiVersion": DEVOPS, "kind": "DevOpsProject", "metadata": {"name": name}, "spec": {}})
    project = wait_for(
        lambda: (
            (p := objects.get(DEVOPS, "DevOpsProject", name)) and (p.get("status") or {}).get("reason") and p
        ),
        timeout=30,
        what="a failure reason",
    )
    assert "already exists" in project["status"]["reason"]
    assert project["metadata"]["annotations"]["devopsproject.devops.kubesphere.io/syncstatus"] == "failed"
    wait_for(
        lambda: [
            e
            for e in objects.list("v1", "Event", namespace="default")
            if e["involvedObject"]["name"] == name and e["reason"] == "SyncFailed"
        ],
        timeout=20,
        what="a SyncFailed event",
    )
    ns = objects.get("v1", "Namespace", name)
    assert "kubesphere.io/devopsproject" not in ns["metadata"]["labels"], "someone else's namespace untouched"
    gave_up = manager.metric("ks_controller_reconcile_total", controller="devopsproject", result="gave_up")
    assert gave_up >= 1
