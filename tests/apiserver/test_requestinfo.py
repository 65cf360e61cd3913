"""RequestInfo resolution: scopes, verbs and names as the authorizer sees them (pure logic)."""

from __future__ import annotations

import pytest

from apiserver.requestinfo import resolve


def test_reference_case_cluster_workspace_namespaces() -> None:
    info = resolve(
        "GET", "/kapis/clusters/gondor/resources.kubesphere.io/v1alpha3/workspaces/w1/namespaces", {}
    )
    assert info.is_resource_request
    assert (info.verb, info.resource, info.workspace, info.cluster) == ("list", "namespaces", "w1", "gondor")
    assert info.api_group == "resources.kubesphere.io"
    assert info.resource_scope == "Workspace"


@pytest.mark.parametrize("path", ["/foo/bar", "/", "/healthz", "/kapis/version", "/oauth/token"])
def test_non_resource_requests_keep_the_method_as_verb(path: str) -> None:
    info = resolve("get", path, {})
    assert not info.is_resource_request
    assert info.verb == "GET"


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        # (verb, group, resource, name, subresource, namespace, workspace, devops, scope)
        ("GET", "/api/v1/namespaces/ns1/pods", {}, ("list", "", "pods", "", "", "ns1", "", "", "Namespace")),
        (
            "GET",
            "/api/v1/namespaces/ns1/pods",
            {"watch": "true"},
            ("watch", "", "pods", "", "", "ns1", "", "", "Namespace"),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns1/pods/p1/log",
            {},
            ("get", "", "pods", "p1", "log", "ns1", "", "", "Namespace"),
        ),
        (
            "DELETE",
            "/api/v1/namespaces/ns1/pods",
            {},
            ("deletecollection", "", "pods", "", "", "ns1", "", "", "Namespace"),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns1",
            {},
            ("get", "", "namespaces", "ns1", "", "ns1", "", "", "Namespace"),
        ),
        (
            "PUT",
            "/api/v1/namespaces/ns1/finalize",
            {},
            ("update", "", "namespaces", "ns1", "finalize", "ns1", "", "", "Namespace"),
        ),
        (
            "GET",
            "/api/v1/watch/namespaces",
            {"labelSelector": "kubesphere.io/workspace=w9"},
            ("watch", "", "namespaces", "", "", "", "w9", "", "Workspace"),
        ),
        (
            "POST",
            "/apis/apps/v1/namespaces/kube-system/deployments",
            {},
            ("create", "apps", "deployments", "", "", "kube-system", "", "", "Namespace"),
        ),
        (
            "GET",
            "/kapis/iam.kubesphere.io/v1alpha2/users",
            {},
            ("list", "iam.kubesphere.io", "users", "", "", "", "", "", "Global"),
        ),
        (
            "PUT",
            "/kapis/iam.kubesphere.io/v1alpha2/users/bob/password",
            {},
            ("update", "iam.kubesphere.io", "users", "bob", "password", "", "", "", "Global"),
        ),
        (
            "GET",
            "/kapis/tenant.kubesphere.io/v1alpha2/workspaces/ws1",
            {},
            ("get", "tenant.kubesphere.io", "workspaces", "ws1", "", "", "ws1", "", "Global"),
        ),
        (
            "GET",
            "/kapis/tenant.kubesphere.io/v1alpha2/workspaces/ws1/namespaces",
            {},
            ("list", "tenant.kubesphere.io", "namespaces", "", "", "", "ws1", "", "Workspace"),
        ),
        (
            "GET",
            "/kapis/tenant.kubesphere.io/v1alpha2/workspaces/ws1/namespaces/ns1",
            {},
            ("get", "tenant.kubesphere.io", "namespaces", "ns1", "", "ns1", "ws1", "", "Namespace"),
        ),
        (
            "GET",
            "/kapis/iam.kubesphere.io/v1alpha2/workspaces/ws1/workspacemembers/bob",
            {},
            ("get", "iam.kubesphere.io", "workspacemembers", "bob", "", "", "ws1", "", "Workspace"),
        ),
        (
            "GET",
            "/kapis/devops.kubesphere.io/v1alpha3/devops/p1/pipelines",
            {},
            ("list", "devops.kubesphere.io", "pipelines", "", "", "", "", "p1", "DevOps"),
        ),
        (
            "GET",
            "/kapis/resources.kubesphere.io/v1alpha3/namespaces/ns1/pods",
            {"fieldSelector": "metadata.name=p1"},
            ("list", "resources.kubesphere.io", "pods", "p1", "", "ns1", "", "", "Namespace"),
        ),
        (
            "GET",
            "/kapis/resources.kubesphere.io/v1alpha3/clusters",
            {},
            ("list", "resources.kubesphere.io", "clusters", "", "", "", "", "", "Global"),
        ),
        (
            "GET",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            {},
            ("list", "rbac.authorization.k8s.io", "clusterroles", "", "", "", "", "", "Cluster"),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns1/pods/p1/proxy/x",
            {},
            ("get", "", "pods", "p1", "proxy", "ns1", "", "", "Namespace"),
        ),
        (
            "GET",
            "/api/v1/proxy/namespaces/ns1/pods/p1/x",
            {},
            ("proxy", "", "pods", "p1", "", "ns1", "", "", "Namespace"),
        ),
    ],
)
def test_resource_requests(method: str, path: str, query: dict[str, str], expected: tuple[str, ...]) -> None:
    info = resolve(method, path, query)
    assert info.is_resource_request
    got = (
        info.verb,
        info.api_group,
        info.resource,
        info.name,
        info.subresource,
        info.namespace,
        info.workspace,
        info.devops,
        info.resource_scope,
    )
    assert got == expected


def test_only_a_namespace_watch_is_scoped_by_the_workspace_selector() -> None:
    selector = {"labelSelector": "kubesphere.io/workspace=w9"}
    assert resolve("GET", "/api/v1/watch/secrets", selector).resource_scope == "Cluster"
    assert resolve("GET", "/api/v1/secrets", {**selector, "watch": "1"}).workspace == ""
    assert resolve("GET", "/api/v1/namespaces", {**selector, "watch": "1"}).resource_scope == "Workspace"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/mine/pods/../../kube-system/secrets",
        "/api/v1/namespaces/mine/pods/./x",
        "/api/v1/namespaces/mine//pods",
        "/kapis/iam.kubesphere.io/v1alpha2/users/me/../admin",
    ],
)
def test_dot_segments_make_a_non_resource_request(path: str) -> None:
    """A proxy's URL library would collapse them; judged literally, only a wildcard path rule allows them."""
    info = resolve("GET", path, {})
    assert not info.is_resource_request and info.path == path and info.verb == "GET"


def test_kubernetes_and_kapis_requests_are_told_apart() -> None:
    assert resolve("GET", "/api/v1/pods", {}).is_kubernetes_request
    assert resolve("GET", "/api", {}).is_kubernetes_request
    assert resolve("GET", "/apis", {}).is_kubernetes_request
    assert not resolve("GET", "/kapis/tenant.kubesphere.io/v1alpha2/workspaces", {}).is_kubernetes_request


@pytest.mark.parametrize(
    "path", ["/apis/apps/v1", "/api/v1", "/apis/apps", "/kapis/iam.kubesphere.io/v1alpha2"]
)
def test_discovery_paths_are_non_resource(path: str) -> None:
    info = resolve("GET", path, {})
    assert not info.is_resource_request
    assert info.verb == "GET"


def test_a_watch_segment_without_a_resource_is_not_a_resource_request() -> None:
    assert not resolve("GET", "/apis/apps/v1/watch", {}).is_resource_request
