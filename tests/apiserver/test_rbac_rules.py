"""The authorizer's decisions over in-memory roles and bindings (pure logic; on the cluster: test_rbac.py).

The objects are the built-in roles from roles/ks_core/files/iam plus the bindings
each case needs, held in a dict-backed stand-in for the informer caches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from apiserver import kube
from apiserver.identity import ANONYMOUS_USER, AUTHENTICATED_GROUP, UserInfo
from apiserver.rbac import Authorizer
from apiserver.requestinfo import resolve
from apiserver.rules import rule_allows

IAM = Path(__file__).resolve().parents[2] / "roles" / "ks_core" / "files" / "iam"
WS_LABEL = "kubesphere.io/workspace"


class Store:
    """Objects of one resource, answering the two reads the authorizer makes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, name: str, *, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get((namespace or "", name))

    def list(
        self, *, namespace: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        out = []
        for (ns, _), obj in self.objects.items():
            have = obj["metadata"].get("labels") or {}
            if (namespace is None or ns == namespace) and all(
                have.get(k) == v for k, v in (labels or {}).items()
            ):
                out.append(obj)
        return out


class FakeCaches:
    def __init__(self) -> None:
        self.stores: dict[kube.Resource, Store] = {}

    def __getitem__(self, res: kube.Resource) -> Store:
        return self.stores.setdefault(res, Store())

    def add(self, res: kube.Resource, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self[res].objects[(meta.get("namespace") or "", meta["name"])] = obj


KINDS = {
    "GlobalRole": kube.GLOBALROLES,
    "GlobalRoleBinding": kube.GLOBALROLEBINDINGS,
    "WorkspaceRole": kube.WORKSPACEROLES,
    "WorkspaceRoleBinding": kube.WORKSPACEROLEBINDINGS,
    "Role": kube.ROLES,
    "RoleBinding": kube.ROLEBINDINGS,
    "ClusterRole": kube.CLUSTERROLES,
    "ClusterRoleBinding": kube.CLUSTERROLEBINDINGS,
    "Namespace": kube.NAMESPACES,
    "DevOpsProject": kube.DEVOPSPROJECTS,
}


def user(name: str) -> UserInfo:
    return UserInfo(name=name, groups=(AUTHENTICATED_GROUP,))


def binding(kind: str, name: str, role_kind: str, role: str, subject: str, **meta: Any) -> dict[str, Any]:
    subject_kind = "Group" if subject.startswith("system:") else "User"
    return {
        "kind": kind,
        "metadata": {"name": name, **meta},
        "roleRef": {"kind": role_kind, "name": role},
        "subjects": [{"kind": subject_kind, "name": subject}],
    }


@pytest.fixture
def caches() -> FakeCaches:
    c = FakeCaches()
    for path in (IAM / "globalroles.yaml", IAM / "globalrolebindings.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                c.add(KINDS[doc["kind"]], doc)
    for doc in yaml.safe_load_all((IAM / "rolebases.yaml").read_text()):
        role = doc["role"]
        if role["kind"] == "WorkspaceRole":
            for ws in ("system-workspace", "other"):
                c.add(
                    kube.WORKSPACEROLES,
                    {
                        **role,
                        "metadata": {"name": f"{ws}-{role['metadata']['name']}", "labels": {WS_LABEL: ws}},
                    },
                )
        else:
            for ns in ("kube-system", "kubesphere-system", "lonely"):
                c.add(kube.ROLES, {**role, "metadata": {"name": role["metadata"]["name"], "namespace": ns}})
    c.add(
        kube.GLOBALROLES,
        {
            "metadata": {"name": "viewer"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}],
        },
    )
    for name, ws in (
        ("kube-system", "system-workspace"),
        ("kubesphere-system", "system-workspace"),
        ("o1", "other"),
        ("lonely", None),
    ):
        c.add(kube.NAMESPACES, {"metadata": {"name": name, "labels": {WS_LABEL: ws} if ws else {}}})
    return c


def allowed(
    c: FakeCaches, who: UserInfo, method: str, path: str, query: dict[str, str] | None = None
) -> bool:
    return Authorizer(c).authorize(who, resolve(method, path, query or {})).allowed


DEPLOYMENTS_KS = "/apis/apps/v1/namespaces/kube-system/deployments"


def test_reference_table(caches: FakeCaches) -> None:
    """The allow/deny table of KubeSphere's rbac_test.go."""
    caches.add(kube.GLOBALROLEBINDINGS, binding("GlobalRoleBinding", "v-viewer", "GlobalRole", "viewer", "v"))
    caches.add(
        kube.WORKSPACEROLEBINDINGS,
        binding(
            "WorkspaceRoleBinding",
            "wa-admin",
            "WorkspaceRole",
            "system-workspace-admin",
            "wa",
            labels={WS_LABEL: "system-workspace"},
        ),
    )
    caches.add(
        kube.WORKSPACEROLEBINDINGS,
        binding(
            "WorkspaceRoleBinding",
            "wv-viewer",
            "WorkspaceRole",
            "system-workspace-viewer",
            "wv",
            labels={WS_LABEL: "system-workspace"},
        ),
    )
    caches.add(
        kube.ROLEBINDINGS,
        binding("RoleBinding", "ra-admin", "Role", "admin", "ra", namespace="kubesphere-system"),
    )
    assert not allowed(caches, user("v"), "POST", "/api/v1/namespaces")
    assert allowed(caches, user("v"), "GET", "/api/v1/namespaces")
    assert allowed(caches, user("wa"), "POST", DEPLOYMENTS_KS)
    assert not allowed(caches, user("wv"), "POST", DEPLOYMENTS_KS)
    assert allowed(caches, user("wv"), "GET", DEPLOYMENTS_KS)
    assert not allowed(caches, user("ra"), "POST", DEPLOYMENTS_KS)
    assert allowed(caches, user("ra"), "POST", "/apis/apps/v1/namespaces/kubesphere-system/deployments")


def test_unlabelled_namespace_matches_no_workspace_binding(caches: FakeCaches) -> None:
    caches.add(
        kube.WORKSPACEROLEBINDINGS,
        binding(
            "WorkspaceRoleBinding",
            "wa-admin",
            "WorkspaceRole",
            "system-workspace-admin",
            "wa",
            labels={WS_LABEL: "system-workspace"},
        ),
    )
    assert not allowed(caches, user("wa"), "GET", "/api/v1/namespaces/lonely/pods")
    # Not even by naming the workspace in the URL.
    assert not allowed(
        caches,
        user("wa"),
        "DELETE",
        "/kapis/tenant.kubesphere.io/v1alpha2/workspaces/system-workspace/namespaces/lonely",
    )
    # Nor a namespace of another workspace.
    assert not allowed(caches, user("wa"), "GET", "/api/v1/namespaces/o1/pods")
    assert allowed(caches, user("wa"), "GET", "/api/v1/namespaces/kube-system/pods")


def test_a_binding_cannot_borrow_another_workspaces_role(caches: FakeCaches) -> None:
    caches.add(
        kube.WORKSPACEROLEBINDINGS,
        binding(
            "WorkspaceRoleBinding",
            "x",
            "WorkspaceRole",
            "system-workspace-admin",
            "sneaky",
            labels={WS_LABEL: "other"},
        ),
    )
    assert not allowed(caches, user("sneaky"), "GET", "/api/v1/namespaces/o1/pods")


def test_global_scope_consults_only_global_bindings(caches: FakeCaches) -> None:
    caches.add(
        kube.CLUSTERROLES,
        {"metadata": {"name": "all"}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
    )
    caches.add(kube.CLUSTERROLEBINDINGS, binding("ClusterRoleBinding", "c", "ClusterRole", "all", "c"))
    assert allowed(caches, user("c"), "DELETE", "/api/v1/namespaces/kube-system")
    assert not allowed(caches, user("c"), "DELETE", "/kapis/iam.kubesphere.io/v1alpha2/users/admin")


def test_authenticated_grants_written_as_rules(caches: FakeCaches) -> None:
    bob = user("bob")
    iam = "/kapis/iam.kubesphere.io/v1alpha2"
    assert allowed(caches, bob, "GET", f"{iam}/users")
    assert allowed(caches, bob, "GET", f"{iam}/users/bob")
    assert allowed(caches, bob, "PUT", f"{iam}/users/bob")
    assert allowed(caches, bob, "PUT", f"{iam}/users/bob/password")
    assert allowed(caches, bob, "GET", f"{iam}/users/bob/loginrecords")
    assert not allowed(caches, bob, "GET", f"{iam}/users/alice")
    assert not allowed(caches, bob, "DELETE", f"{iam}/users/alice")
    assert not allowed(caches, bob, "POST", f"{iam}/users")
    assert allowed(caches, bob, "GET", f"{iam}/workspaces/w1/workspacemembers/bob")
    assert not allowed(caches, bob, "GET", f"{iam}/workspaces/w1/workspacemembers/alice")
    # The built-in roles' plain rules are console grants too: no listing every User (with its password
    # hash) or every workspace through the Kubernetes API or the generic resources API.
    assert not allowed(caches, bob, "GET", "/apis/iam.kubesphere.io/v1alpha2/users")
    assert not allowed(caches, bob, "GET", "/apis/tenant.kubesphere.io/v1alpha2/workspacetemplates")
    generic = resolve("GET", "/kapis/resources.kubesphere.io/v1alpha3/workspacetemplates", {})
    assert not Authorizer(caches).authorize_real(bob, generic, api_group="tenant.kubesphere.io").allowed
    assert not allowed(caches, bob, "GET", "/apis/iam.kubesphere.io/v1alpha2/users/bob")
    assert not allowed(caches, bob, "PUT", "/apis/iam.kubesphere.io/v1alpha2/users/bob")
    assert allowed(caches, bob, "GET", "/api")
    assert not allowed(caches, bob, "GET", "/api/v1/namespaces")
    assert allowed(caches, bob, "GET", "/kapis/tenant.kubesphere.io/v1alpha2/workspaces")
    assert not allowed(caches, bob, "POST", "/kapis/tenant.kubesphere.io/v1alpha2/workspaces")
    assert not allowed(caches, bob, "DELETE", "/kapis/tenant.kubesphere.io/v1alpha2/workspaces/x")
    # None of it applies to anonymous callers.
    assert not allowed(caches, ANONYMOUS_USER, "GET", f"{iam}/users")
    assert not allowed(caches, ANONYMOUS_USER, "GET", "/kapis/tenant.kubesphere.io/v1alpha2/workspaces")


def test_always_allowed_paths_and_modes(caches: FakeCaches) -> None:
    for path in (
        "/oauth/token",
        "/kapis/config.kubesphere.io/v1alpha2/configs/oauth",
        "/kapis/version",
        "/healthz",
    ):
        assert allowed(caches, ANONYMOUS_USER, "GET", path)
    assert not allowed(caches, ANONYMOUS_USER, "GET", "/version")
    assert not allowed(caches, ANONYMOUS_USER, "GET", "/oauth")
    deny = Authorizer(caches, mode="AlwaysDeny")
    assert not deny.authorize(user("admin"), resolve("GET", "/api/v1/pods", {})).allowed
    assert deny.authorize(ANONYMOUS_USER, resolve("POST", "/oauth/token", {})).allowed
    assert (
        Authorizer(caches, mode="AlwaysAllow")
        .authorize(ANONYMOUS_USER, resolve("DELETE", "/api/v1/nodes/n", {}))
        .allowed
    )


def test_devops_scope_uses_the_projects_workspace_and_admin_namespace(caches: FakeCaches) -> None:
    caches.add(
        kube.DEVOPSPROJECTS,
        {"metadata": {"name": "p1", "labels": {WS_LABEL: "other"}}, "status": {"adminNamespace": "p1ns"}},
    )
    caches.add(
        kube.ROLES,
        {
            "metadata": {"name": "viewer", "namespace": "p1ns"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]}],
        },
    )
    caches.add(kube.ROLEBINDINGS, binding("RoleBinding", "d-viewer", "Role", "viewer", "d", namespace="p1ns"))
    caches.add(
        kube.WORKSPACEROLEBINDINGS,
        binding(
            "WorkspaceRoleBinding", "o-admin", "WorkspaceRole", "other-admin", "o", labels={WS_LABEL: "other"}
        ),
    )
    pipelines = "/kapis/devops.kubesphere.io/v1alpha3/devops/p1/pipelines"
    assert allowed(caches, user("d"), "GET", pipelines)
    assert not allowed(caches, user("d"), "POST", pipelines)
    assert allowed(caches, user("o"), "POST", pipelines)
    assert not allowed(caches, user("x"), "GET", pipelines)


def test_resources_requests_are_deferred_then_checked_against_the_real_group(caches: FakeCaches) -> None:
    caches.add(
        kube.ROLES,
        {
            "metadata": {"name": "pod-reader", "namespace": "kube-system"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
    )
    caches.add(
        kube.ROLEBINDINGS, binding("RoleBinding", "p", "Role", "pod-reader", "p", namespace="kube-system")
    )
    authz = Authorizer(caches)
    info = resolve("GET", "/kapis/resources.kubesphere.io/v1alpha3/namespaces/kube-system/pods", {})
    first = authz.authorize(user("p"), info)
    assert first.allowed and first.deferred
    assert authz.authorize_real(user("p"), info, api_group="").allowed
    assert not authz.authorize_real(user("q"), info, api_group="").allowed
    assert not authz.authorize_real(user("p"), replace(info, resource="secrets"), api_group="").allowed
    admin = authz.authorize(user("admin"), info)
    assert admin.allowed and not admin.deferred
    # Other versions, other clusters and the Kubernetes prefix never defer (nothing would check them).
    for path in (
        "/kapis/resources.kubesphere.io/v1alpha2/namespaces/kube-system/pods",
        "/kapis/clusters/c1/resources.kubesphere.io/v1alpha3/namespaces/kube-system/pods",
        "/apis/resources.kubesphere.io/v1alpha3/namespaces/kube-system/pods",
    ):
        assert not authz.authorize(user("p"), resolve("GET", path, {})).allowed, path
    # Writes are never deferred.
    assert not authz.authorize(user("p"), resolve("DELETE", info.path + "/x", {})).allowed


def test_forbidden_message_reads_like_kubernetes(caches: FakeCaches) -> None:
    authz = Authorizer(caches)
    info = resolve("GET", "/kapis/tenant.kubesphere.io/v1alpha2/workspaces/ws1", {})
    assert authz.forbidden_message(UserInfo(name="bob"), info) == (
        'workspaces.tenant.kubesphere.io "ws1" is forbidden: User "bob" cannot get resource "workspaces" '
        'in API group "tenant.kubesphere.io" at the cluster scope'
    )
    pods = resolve("GET", "/api/v1/namespaces/n1/pods", {})
    assert authz.forbidden_message(UserInfo(name="bob"), pods) == (
        'pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "n1"'
    )
    assert authz.forbidden_message(UserInfo(name="bob"), resolve("GET", "/version", {})) == (
        'forbidden: User "bob" cannot GET path "/version"'
    )


@pytest.mark.parametrize(
    ("rule", "method", "path", "expected"),
    [
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            "GET",
            "/api/v1/namespaces/n/pods/p",
            True,
        ),
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            "GET",
            "/api/v1/namespaces/n/pods/p/log",
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            "GET",
            "/api/v1/namespaces/n/pods/p/log",
            True,
        ),
        (
            {"apiGroups": [""], "resources": ["*/log"], "verbs": ["get"]},
            "GET",
            "/api/v1/namespaces/n/pods/p/log",
            True,
        ),
        (
            {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["get"]},
            "GET",
            "/api/v1/namespaces/n/pods/p",
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["q"]},
            "GET",
            "/api/v1/namespaces/n/pods/p",
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["p"]},
            "GET",
            "/api/v1/namespaces/n/pods/p",
            True,
        ),
        (
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["list"]},
            "GET",
            "/api/v1/namespaces/n/pods",
            True,
        ),
        ({"nonResourceURLs": ["/metrics"], "verbs": ["get"]}, "GET", "/metrics", True),
        ({"nonResourceURLs": ["/debug/*"], "verbs": ["*"]}, "GET", "/debug/pprof", True),
        ({"nonResourceURLs": ["/debug/*"], "verbs": ["*"]}, "GET", "/metrics", False),
        ({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, "GET", "/metrics", False),
    ],
)
def test_kubernetes_rule_matching(rule: dict[str, Any], method: str, path: str, expected: bool) -> None:
    assert rule_allows(resolve(method, path, {}), rule) is expected


class VersionedStore(Store):
    """A store that, like an informer, carries a resourceVersion that moves with every change."""

    resource_version = "1"

    def __len__(self) -> int:
        return len(self.objects)


def test_subject_index_follows_the_informer(caches: FakeCaches) -> None:
    versioned = VersionedStore()
    versioned.objects = caches[kube.CLUSTERROLEBINDINGS].objects
    caches.stores[kube.CLUSTERROLEBINDINGS] = versioned
    caches.add(
        kube.CLUSTERROLES,
        {
            "metadata": {"name": "nodes"},
            "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}],
        },
    )
    authz = Authorizer(caches)
    nodes = resolve("GET", "/api/v1/nodes", {})
    sa = UserInfo(name="system:serviceaccount:kube-system:robot", groups=(AUTHENTICATED_GROUP,))
    assert not authz.authorize(user("n"), nodes).allowed
    caches.add(kube.CLUSTERROLEBINDINGS, binding("ClusterRoleBinding", "n", "ClusterRole", "nodes", "n"))
    versioned.resource_version = "2"
    assert authz.authorize(user("n"), nodes).allowed
    caches.add(
        kube.CLUSTERROLEBINDINGS,
        {
            "metadata": {"name": "robot"},
            "roleRef": {"kind": "ClusterRole", "name": "nodes"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "kube-system"}],
        },
    )
    versioned.resource_version = "3"
    assert authz.authorize(sa, nodes).allowed
    assert not authz.authorize(user("robot"), nodes).allowed
    del versioned.objects[("", "n")]
    versioned.resource_version = "4"
    assert not authz.authorize(user("n"), nodes).allowed
