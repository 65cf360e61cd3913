"""The allow/deny table at every scope, through a real ks-apiserver in front of the local cluster.

Each row is one caller and one request; "allowed" means the authorizer let it
through (the proxied or handled answer is not 403), "denied" a 403 Status from
ks-apiserver naming the caller.  The users hold one binding each: platform
admin, workspace admin / viewer / regular (the last with a namespace viewer
Role), a project admin in one namespace, another workspace's admin, and a
platform-regular outsider.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from tests.apiserver.conftest import ApiServer
from tests.apiserver.kapis_support import IAM, IAM_GV, RESOURCES, TENANT, World, call
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def world(platform_crds: Cluster, apiserver: ApiServer) -> Iterator[World]:
    w = World(platform_crds, apiserver)
    try:
        n = w.names
        n["ws1"], n["ws2"] = w.workspace("rws1"), w.workspace("rws2")
        n["ns1a"] = w.namespace("rns1a", n["ws1"])
        n["ns1b"] = w.namespace("rns1b", n["ws1"])
        n["nsx"] = w.namespace("rnsx", None)
        n["nsdp"] = w.namespace("rdp", n["ws1"])
        n["dp"] = w.name("rdp")
        w.cluster_object(
            ("devops.kubesphere.io", "v1alpha3"),
            "devopsprojects",
            {
                "kind": "DevOpsProject",
                "metadata": {"name": n["dp"], "labels": {"kubesphere.io/workspace": n["ws1"]}},
                "status": {"adminNamespace": n["nsdp"]},
            },
        )
        w.user("admin", globalrole="platform-admin")
        for key in ("wsadmin", "wsviewer", "wsregular", "projadmin", "ws2admin", "outsider", "grouped"):
            w.user(key)
        w.workspace_member(w.users["wsadmin"], n["ws1"], "admin")
        w.workspace_member(w.users["wsviewer"], n["ws1"], "viewer")
        w.workspace_member(w.users["wsregular"], n["ws1"], "regular")
        w.workspace_member(w.users["ws2admin"], n["ws2"], "admin")
        w.namespace_member(w.users["wsregular"], n["ns1a"], "viewer")
        w.namespace_member(w.users["projadmin"], n["ns1b"], "admin")
        w.namespace_member(w.users["projadmin"], n["nsdp"], "viewer")
        # Wait for the last bindings of each kind to reach the server's caches.
        w.until("ws2admin", "GET", f"{IAM}/workspaces/{n['ws2']}/workspaceroles", 200)
        w.until("projadmin", "GET", f"/api/v1/namespaces/{n['nsdp']}/pods", 200)
        yield w
    finally:
        w.close()


def fill(world: World, template: str) -> str:
    return template.format(**world.names, me="{me}")


# (caller, method, path template, allowed?) -- {me} is the caller's own user name.
TABLE = [
    # Global scope: GlobalRoleBindings only.
    ("admin", "GET", f"{IAM}/globalroles", True),
    ("outsider", "GET", f"{IAM}/globalroles", False),
    ("wsadmin", "GET", f"{IAM}/globalroles", False),
    ("outsider", "GET", f"{IAM}/users", True),
    ("anonymous", "GET", f"{IAM}/users", False),
    ("outsider", "GET", f"{IAM}/users/{{me}}", True),
    # ...but not through the Kubernetes API, where no handler limits what they change about themselves.
    ("outsider", "GET", "/apis/iam.kubesphere.io/v1alpha2/users/{me}", False),
    ("outsider", "PATCH", "/apis/iam.kubesphere.io/v1alpha2/users/{me}", False),
    ("outsider", "GET", "/apis/iam.kubesphere.io/v1alpha2/users", False),
    ("outsider", "GET", f"{RESOURCES}/users", False),
    ("outsider", "GET", f"{RESOURCES}/workspacetemplates", False),
    ("outsider", "GET", "/apis/tenant.kubesphere.io/v1alpha2/workspacetemplates", False),
    ("admin", "GET", f"{RESOURCES}/workspacetemplates", True),
    ("outsider", "GET", f"{IAM}/users/admin", False),
    ("wsadmin", "DELETE", f"{IAM}/users/admin", False),
    ("outsider", "GET", f"{TENANT}/workspaces", True),
    ("outsider", "POST", f"{TENANT}/workspaces", False),
    ("anonymous", "GET", f"{TENANT}/workspaces", False),
    # Cluster scope: GlobalRoleBindings and ClusterRoleBindings.
    ("admin", "GET", "/api/v1/nodes", True),
    ("wsadmin", "GET", "/api/v1/nodes", False),
    ("outsider", "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles", False),
    ("admin", "GET", f"{IAM}/clustermembers", True),
    ("wsadmin", "GET", f"{IAM}/clustermembers", False),
    # Kubernetes' own bootstrap ClusterRoleBindings count too: system:public-info-viewer opens /version to
    # everyone, system:discovery opens /api and /apis to authenticated callers only.
    ("anonymous", "GET", "/version", True),
    ("outsider", "GET", "/apis", True),
    ("anonymous", "GET", "/apis", False),
    ("anonymous", "GET", "/api", False),
    # Workspace scope: plus the workspace's WorkspaceRoleBindings.
    ("wsadmin", "GET", f"{IAM}/workspaces/{{ws1}}/workspacemembers", True),
    ("wsviewer", "GET", f"{IAM}/workspaces/{{ws1}}/workspaceroles", True),
    ("wsviewer", "DELETE", f"{IAM}/workspaces/{{ws1}}/workspaceroles/nothing", False),
    ("ws2admin", "GET", f"{IAM}/workspaces/{{ws1}}/workspacemembers", False),
    ("outsider", "GET", f"{IAM}/workspaces/{{ws1}}/workspaceroles", False),
    ("outsider", "GET", f"{IAM}/workspaces/{{ws1}}/workspacemembers/{{me}}", True),
    # Namespace scope: plus the namespace's workspace's bindings and its RoleBindings.
    ("admin", "GET", "/api/v1/namespaces/{ns1a}/pods", True),
    ("wsadmin", "GET", "/api/v1/namespaces/{ns1a}/pods", True),
    ("wsviewer", "GET", "/api/v1/namespaces/{ns1a}/pods", True),
    ("wsregular", "GET", "/api/v1/namespaces/{ns1a}/pods", True),
    ("wsregular", "GET", "/api/v1/namespaces/{ns1b}/pods", False),
    ("projadmin", "GET", "/api/v1/namespaces/{ns1a}/pods", False),
    ("projadmin", "GET", "/api/v1/namespaces/{ns1b}/pods", True),
    ("ws2admin", "GET", "/api/v1/namespaces/{ns1a}/pods", False),
    ("outsider", "GET", "/api/v1/namespaces/{ns1a}/pods", False),
    ("anonymous", "GET", "/api/v1/namespaces/{ns1a}/pods", False),
    ("wsadmin", "POST", "/apis/apps/v1/namespaces/{ns1a}/deployments?dryRun=All", True),
    ("wsviewer", "POST", "/apis/apps/v1/namespaces/{ns1a}/deployments?dryRun=All", False),
    ("projadmin", "POST", "/apis/apps/v1/namespaces/{ns1a}/deployments?dryRun=All", False),
    ("projadmin", "POST", "/apis/apps/v1/namespaces/{ns1b}/deployments?dryRun=All", True),
    # A namespace without a workspace label matches no workspace's bindings (KubeSphere's quirk, not ours).
    ("admin", "GET", "/api/v1/namespaces/{nsx}/pods", True),
    ("wsadmin", "GET", "/api/v1/namespaces/{nsx}/pods", False),
    ("wsadmin", "DELETE", f"{TENANT}/workspaces/{{ws1}}/namespaces/{{nsx}}", False),
    # The generic resources API checks the real resource.
    ("wsregular", "GET", f"{RESOURCES}/namespaces/{{ns1a}}/pods", True),
    ("wsregular", "GET", f"{RESOURCES}/namespaces/{{ns1b}}/pods", False),
    ("projadmin", "GET", f"{RESOURCES}/namespaces/{{ns1b}}/secrets", True),
    ("projadmin", "GET", f"{RESOURCES}/pods", False),
    ("outsider", "GET", f"{RESOURCES}/namespaces/{{ns1a}}/configmaps", False),
    # DevOps scope: the project's workspace, and the RoleBindings of its admin namespace.
    ("wsadmin", "GET", f"{IAM}/devops/{{dp}}/members", True),
    ("projadmin", "GET", f"{IAM}/devops/{{dp}}/members", True),
    ("projadmin", "POST", f"{IAM}/devops/{{dp}}/members", False),
    ("ws2admin", "GET", f"{IAM}/devops/{{dp}}/members", False),
    ("outsider", "GET", f"{IAM}/devops/{{dp}}/roles", False),
]


@pytest.mark.parametrize(("who", "method", "template", "allowed"), TABLE)
def test_rbac_table(world: World, who: str, method: str, template: str, allowed: bool) -> None:
    path = fill(world, template).replace("{me}", world.users.get(who, "system:anonymous"))
    kwargs = {}
    if method in ("POST", "PUT"):
        kwargs["json"] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        }
    resp = call(world.server, method, path, token=world.tokens.get(who), **kwargs)
    if allowed:
        assert resp.status_code != 403, f"{who} {method} {path}: {resp.status_code} {resp.text[:300]}"
        assert resp.status_code < 500, resp.text
    else:
        assert resp.status_code == 403, f"{who} {method} {path}: {resp.status_code} {resp.text[:300]}"
        body = resp.json()
        assert body["kind"] == "Status" and body["reason"] == "Forbidden" and body["code"] == 403
        name = world.users.get(who, "system:anonymous")
        assert f'User "{name}"' in body["message"]


def test_forbidden_body_reads_like_kubernetes(world: World) -> None:
    resp = call(world.server, "GET", f"{TENANT}/workspaces/{world.names['ws1']}", token=None)
    assert resp.status_code == 403
    assert resp.json()["message"] == (
        f'workspaces.tenant.kubesphere.io "{world.names["ws1"]}" is forbidden: User "system:anonymous" '
        'cannot get resource "workspaces" in API group "tenant.kubesphere.io" at the cluster scope'
    )


def test_group_and_bindings_open_a_namespace(world: World) -> None:
    """Reference case 3: 403 on pods, then a group RoleBinding plus a workspace binding make it 200."""
    who = world.users["grouped"]
    pods = f"/api/v1/namespaces/{world.names['ns1a']}/pods"
    assert call(world.server, "GET", pods, token=world.tokens["grouped"]).status_code == 403
    group = world.name("devs")
    world.custom.patch_cluster_custom_object(*IAM_GV, "users", who, {"spec": {"groups": [group]}})
    world.namespace_member(group, world.names["ns1a"], "admin", kind="Group")
    world.workspace_member(who, world.names["ws1"], "regular")
    world.until("grouped", "GET", pods, 200)
    # The group, not the workspace role, is what opened it: another namespace of the workspace stays shut.
    assert (
        call(
            world.server,
            "GET",
            f"/api/v1/namespaces/{world.names['ns1b']}/pods",
            token=world.tokens["grouped"],
        ).status_code
        == 403
    )


@pytest.mark.parametrize(
    "template",
    [
        "/api/v1/namespaces/{ns1a}/pods/../../{ns1b}/configmaps",
        "/api/v1/namespaces/{ns1a}/pods/%2e%2e/%2E%2E/{ns1b}/configmaps",
        "/api/v1/namespaces/{ns1a}/pods/x/../../../{ns1b}/configmaps",
    ],
)
def test_dot_segments_cannot_borrow_another_paths_rules(world: World, template: str) -> None:
    """Sent byte for byte (HTTP client libraries collapse ``..`` themselves): the proxy's URL library
    would collapse them on the way to kube-apiserver, so they must never pass as the path they name."""
    path = fill(world, template)
    host, port = world.server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {world.tokens['wsregular']}"})
        resp = conn.getresponse()
        body = resp.read().decode()
    finally:
        conn.close()
    # The server refuses them outright (400); the authorizer would deny them too (test_requestinfo.py).
    assert resp.status in (400, 403), f"{path}: {resp.status} {body[:300]}"
