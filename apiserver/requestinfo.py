"""RequestInfo: what a request asks for, in the terms the authorizer matches rules against.

KubeSphere's resolver extends the Kubernetes one with the ``kapis``/``kapi``
prefixes, an optional ``clusters/{c}`` segment, ``workspaces/{ws}`` and
``devops/{d}`` scopes, and a resource *scope* (Global, Cluster, Workspace,
Namespace, DevOps) that decides which role bindings are consulted.

Parsing, in order: prefix; ``clusters/{c}``; group (not for ``api``/``kapi``)
and version; a ``watch``/``proxy`` verb segment or the verb from the method;
``workspaces/{ws}`` (consumed only when more than two parts remain, so
``/workspaces/ws1`` stays resource ``workspaces`` named ``ws1``);
``namespaces/{ns}`` or ``devops/{d}``; then resource/name/subresource.  A get
without a name is a list (a watch with ``watch=1``), a delete without a name a
deletecollection, ``pods/exec``, ``pods/attach`` and ``pods/portforward`` of the Kubernetes API
are ``create`` whatever the method (a websocket handshake is a GET), and a watch of namespaces selecting
``kubesphere.io/workspace=X`` is workspace-scoped (KubeSphere applies that to
any resource, so a label on a pod or secret would widen a workspace's reach
across namespaces).  Anything that is not an API path (fewer than three
segments, or another prefix) is a non-resource request whose verb is the
upper-case HTTP method.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

GLOBAL_SCOPE = "Global"
CLUSTER_SCOPE = "Cluster"
WORKSPACE_SCOPE = "Workspace"
NAMESPACE_SCOPE = "Namespace"
DEVOPS_SCOPE = "DevOps"

API_PREFIXES = frozenset({"api", "apis", "kapis", "kapi"})
GROUPLESS_PREFIXES = frozenset({"api", "kapi"})
KUBERNETES_PREFIXES = frozenset({"api", "apis"})
SPECIAL_VERBS = frozenset({"proxy", "watch"})
SPECIAL_VERBS_NO_SUBRESOURCES = frozenset({"proxy"})
NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
#: Pod subresources that open a stream into a container: always ``create`` (as Kubernetes checks a
#: websocket GET of them), so a role that may only read pods cannot open a terminal.
CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
WORKSPACE_SELECTOR = "kubesphere.io/workspace="

#: (group, resource) pairs that are authorized against GlobalRoleBindings only.
GLOBAL_RESOURCES = frozenset(
    {
        ("iam.kubesphere.io", "users"),
        ("iam.kubesphere.io", "globalroles"),
        ("iam.kubesphere.io", "globalrolebindings"),
        ("tenant.kubesphere.io", "workspaces"),
        ("tenant.kubesphere.io", "clusters"),
        ("cluster.kubesphere.io", "clusters"),
        ("resources.kubesphere.io", "clusters"),
    }
)

#: Segments a URL library may collapse on the way to kube-apiserver (``a/b/../c`` is ``a/c``): a path
#: holding one is judged as the non-resource path it literally is, so it cannot borrow ``a/b``'s rules.
_UNSAFE_SEGMENTS = frozenset({"", ".", ".."})
_METHOD_VERBS = {
    "POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete",
}  # fmt: skip


@dataclass(frozen=True)
class RequestInfo:
    path: str
    verb: str
    is_resource_request: bool
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    cluster: str = ""
    workspace: str = ""
    namespace: str = ""
    devops: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: tuple[str, ...] = ()
    resource_scope: str = ""

    @property
    def is_kubernetes_request(self) -> bool:
        """A request for the Kubernetes API itself (``/api``, ``/apis``), as opposed to ``/kapis``."""
        if self.api_prefix:
            return self.api_prefix in KUBERNETES_PREFIXES
        parts = _split(self.path)
        return 0 < len(parts) < 3 and parts[0] in KUBERNETES_PREFIXES


def _split(path: str) -> list[str]:
    trimmed = path.strip("/")
    return trimmed.split("/") if trimmed else []


def resource_scope(*, api_group: str, resource: str, namespace: str, devops: str, workspace: str) -> str:
    """The scope whose bindings decide a request (Global pairs first, then the narrowest set)."""
    if (api_group, resource) in GLOBAL_RESOURCES:
        return GLOBAL_SCOPE
    if namespace:
        return NAMESPACE_SCOPE
    if devops:
        return DEVOPS_SCOPE
    if workspace:
        return WORKSPACE_SCOPE
    return CLUSTER_SCOPE


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


def resolve(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    """The RequestInfo of one request (``query`` is the parsed query string)."""
    method = method.upper()
    non_resource = RequestInfo(path=path, verb=method, is_resource_request=False)
    parts = _split(path)
    if len(parts) < 3 or parts[0] not in API_PREFIXES or any(p in _UNSAFE_SEGMENTS for p in parts):
        return non_resource
    prefix, parts = parts[0], parts[1:]
    cluster = ""
    if parts[0] == "clusters":
        if len(parts) > 1:
            cluster = parts[1]
        if len(parts) > 2:
            parts = parts[2:]
    group = ""
    if prefix not in GROUPLESS_PREFIXES:
        if len(parts) < 3:
            return replace(non_resource, api_prefix=prefix, cluster=cluster)
        group, parts = parts[0], parts[1:]
    version, parts = parts[0], parts[1:]
    if parts and parts[0] in SPECIAL_VERBS:
        if len(parts) < 2:
            # "/apis/g/v/watch" names no resource: treat it as a non-resource request.
            return replace(non_resource, api_prefix=prefix, cluster=cluster)
        verb, parts = parts[0], parts[1:]
    else:
        verb = _METHOD_VERBS.get(method, "")
    if not parts:
        # "/api/v1", "/apis/g/v": discovery of a group version.
        return RequestInfo(
            path=path, verb=method, is_resource_request=False, api_prefix=prefix, api_group=group,
            api_version=version, cluster=cluster,
        )  # fmt: skip
    workspace = namespace = devops = ""
    if parts[0] == "workspaces":
        if len(parts) > 1:
            workspace = parts[1]
        if len(parts) > 2:
            parts = parts[2:]
    if parts[0] == "namespaces":
        if len(parts) > 1:
            namespace = parts[1]
            if len(parts) > 2 and parts[2] not in NAMESPACE_SUBRESOURCES:
                parts = parts[2:]
    elif parts[0] == "devops" and len(parts) > 1:
        devops = parts[1]
        if len(parts) > 2:
            parts = parts[2:]
    resource = parts[0]
    name = parts[1] if len(parts) >= 2 else ""
    subresource = parts[2] if len(parts) >= 3 and verb not in SPECIAL_VERBS_NO_SUBRESOURCES else ""
    scope = resource_scope(
        api_group=group, resource=resource, namespace=namespace, devops=devops, workspace=workspace
    )
    if not name and verb == "get":
        verb = "watch" if _truthy(query.get("watch")) else "list"
        selected = _field_name(query.get("fieldSelector", ""))
        if selected:
            name = selected
    if verb == "watch" and resource == "namespaces":
        # Only the namespaces of one workspace: a label on other objects proves nothing about them.
        selector = query.get("labelSelector", "")
        if selector.startswith(WORKSPACE_SELECTOR):
            workspace = selector[len(WORKSPACE_SELECTOR) :].split(",", 1)[0].strip()
            scope = WORKSPACE_SCOPE
    if not name and verb == "delete":
        verb = "deletecollection"
    # Only for the Kubernetes API: KubeSphere's own terminal route (/kapis/terminal.kubesphere.io)
    # passes with the method's verb and checks ``create pods/exec`` itself, as KubeSphere does.
    if (
        resource == "pods"
        and subresource in CONNECT_SUBRESOURCES
        and verb in ("get", "create")
        and (prefix in KUBERNETES_PREFIXES)
    ):
        verb = "create"
    return RequestInfo(
        path=path, verb=verb, is_resource_request=True, api_prefix=prefix, api_group=group,
        api_version=version, cluster=cluster, workspace=workspace, namespace=namespace, devops=devops,
        resource=resource, subresource=subresource, name=name, parts=tuple(parts), resource_scope=scope,
    )  # fmt: skip


def _field_name(selector: str) -> str:
    """``metadata.name=x`` (alone, or among other terms) as a name, like Kubernetes' RequiresExactMatch."""
    for term in selector.split(","):
        for op in ("==", "="):
            key, sep, value = term.partition(op)
            if sep and key.strip() == "metadata.name" and "!" not in key:
                value = value.strip()
                return value if value and "/" not in value and value not in (".", "..") else ""
    return ""
