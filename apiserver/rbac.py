"""The authorizer: always-allowed paths, then RBAC over KubeSphere's four kinds of binding.

Bindings are read from the informer caches, in KubeSphere's order, stopping at
the first rule that allows the request:

1. every GlobalRoleBinding (and nothing else for Global-scope resources);
2. for Workspace, Namespace and DevOps scope, the WorkspaceRoleBindings of the
   workspace: the one in the URL for Workspace scope, the namespace's (or the
   DevOps project's) ``kubesphere.io/workspace`` label otherwise.  A namespace
   without that label matches no workspace's bindings -- KubeSphere matches
   every workspace's, which lets any workspace member into unlabelled
   namespaces; we do not copy that;
3. for Namespace and DevOps scope, the RoleBindings in the namespace (a
   DevOps project's ``status.adminNamespace``);
4. for every non-Global scope, every ClusterRoleBinding.

Rules are matched the Kubernetes way (``apiserver.rules``).  The
``iam.kubesphere.io/rego-override`` annotation is not evaluated; the built-in
``authenticated`` role's module is expressed as Python rules instead.  The
built-in ``authenticated`` and ``anonymous`` roles, which every caller holds,
grant the console's ``/kapis`` APIs only, never the Kubernetes API (their
``list users`` would hand everyone every password hash through the proxy).

``resources.kubesphere.io`` list/get requests name a resource by plural only;
rules are checked against that group first (KubeSphere's behaviour), and when
they do not allow it the decision is *deferred*: the resources handler, which
knows the real group after discovery, authorizes the real resource before it
reads anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from apiserver import kube
from apiserver.identity import UserInfo
from apiserver.requestinfo import (
    DEVOPS_SCOPE,
    GLOBAL_SCOPE,
    NAMESPACE_SCOPE,
    WORKSPACE_SCOPE,
    RequestInfo,
    resource_scope,
)
from apiserver.rules import SELF_REVIEWS, authenticated_allows, binding_applies, rule_allows

log = logging.getLogger(__name__)

WORKSPACE_LABEL = "kubesphere.io/workspace"
AUTHENTICATED_ROLE = "authenticated"
#: Built-in roles every caller holds; they grant the console's /kapis APIs, never the Kubernetes API
#: itself (their "list users" would otherwise hand everyone every password hash through the proxy).
CONSOLE_ROLES = frozenset({AUTHENTICATED_ROLE, "anonymous"})
RESOURCES_GROUP = "resources.kubesphere.io"
#: Only the version the resources handler serves defers (nothing else may be reached unchecked).
RESOURCES_VERSION = "v1alpha3"
#: Paths every caller may use; authentication still runs (a bad token is still a 401).
ALWAYS_ALLOWED = ("/oauth/*", "/kapis/config.kubesphere.io/*", "/kapis/version", "/kapis/metrics", "/healthz",
                  "/readyz", "/livez", "/openapi.json", "/docs",
                  "/.well-known/openid-configuration")  # fmt: skip


class CacheReader(Protocol):
    def __getitem__(self, res: kube.Resource) -> Any: ...


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    #: Allowed only provisionally: the handler must authorize the real resource (resources.kubesphere.io).
    deferred: bool = False


class SubjectIndex:
    """Cluster-wide bindings by subject, rebuilt when their informer has moved on.

    GlobalRoleBindings and ClusterRoleBindings are consulted on every request;
    scanning thousands per request would cost milliseconds, so they are looked
    up by (kind, name) of the subject.  The index is stamped with the
    informer's resourceVersion and size; a store without a version is scanned.
    """

    def __init__(self) -> None:
        self._stamp: tuple[str, int] | None = None
        self._by_subject: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def bindings(self, informer: Any, user: UserInfo) -> list[dict[str, Any]]:
        version = str(getattr(informer, "resource_version", "") or "")
        if not version:
            return [b for b in informer.list() if binding_applies(user, b)]
        stamp = (version, len(informer))
        if stamp != self._stamp:
            self._rebuild(informer.list())
            self._stamp = stamp
        keys = [("User", user.name), *(("Group", g) for g in user.groups), ("ServiceAccount", user.name)]
        found: dict[int, dict[str, Any]] = {}
        for key in keys:
            for binding in self._by_subject.get(key, ()):
                found.setdefault(id(binding), binding)
        return list(found.values())

    def _rebuild(self, bindings: Iterable[dict[str, Any]]) -> None:
        index: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for binding in bindings:
            namespace = str((binding.get("metadata") or {}).get("namespace") or "")
            for subject in binding.get("subjects") or []:
                if not isinstance(subject, dict):
                    continue
                kind, name = str(subject.get("kind") or ""), str(subject.get("name") or "")
                if kind == "ServiceAccount":
                    name = f"system:serviceaccount:{subject.get('namespace') or namespace}:{name}"
                index.setdefault((kind, name), []).append(binding)
        self._by_subject = index


def path_allowed(path: str) -> bool:
    for pattern in ALWAYS_ALLOWED:
        if pattern.endswith("*") and path.startswith(pattern[:-1]):
            return True
        if path == pattern:
            return True
    return False


class Authorizer:
    """Decides one request from the cached roles and bindings (no API calls)."""

    def __init__(self, caches: CacheReader, *, mode: str = "RBAC") -> None:
        self.caches = caches
        self.mode = mode
        self._global = SubjectIndex()
        self._cluster = SubjectIndex()

    def authorize(self, user: UserInfo, info: RequestInfo) -> Decision:
        if path_allowed(info.path):
            return Decision(True, "always-allowed path")
        if self.mode == "AlwaysAllow":
            return Decision(True, "authorization mode AlwaysAllow")
        if self.mode == "AlwaysDeny":
            return Decision(False, "authorization mode AlwaysDeny")
        decision = self.rbac(user, info)
        if decision.allowed or not self._defers(info):
            return decision
        return Decision(True, "deferred to the resources handler", deferred=True)

    def rbac(self, user: UserInfo, info: RequestInfo) -> Decision:
        """RBAC alone (no path exceptions, no deferral)."""
        for source, rules, role in self._rule_sets(user, info):
            if role == AUTHENTICATED_ROLE and authenticated_allows(user, info):
                return Decision(True, f"{source} (authenticated role grants)")
            if role in CONSOLE_ROLES and info.is_kubernetes_request:
                continue
            for rule in rules:
                if isinstance(rule, Mapping) and rule_allows(info, rule):
                    return Decision(True, source)
        return Decision(False, "no rule allows it")

    def allows(
        self,
        user: UserInfo,
        *,
        verb: str,
        resource: str,
        api_group: str = "",
        scope: str = "",
        workspace: str = "",
        namespace: str = "",
        devops: str = "",
        name: str = "",
        subresource: str = "",
    ) -> bool:
        """A check handlers make on the caller's behalf (``scope`` defaults to what the names imply)."""
        scope = scope or resource_scope(
            api_group=api_group, resource=resource, namespace=namespace, devops=devops, workspace=workspace
        )
        info = RequestInfo(
            path="", verb=verb, is_resource_request=True, api_prefix="kapis", api_group=api_group,
            workspace=workspace, namespace=namespace, devops=devops, resource=resource, name=name,
            subresource=subresource, resource_scope=scope,
        )  # fmt: skip
        if self.mode == "AlwaysAllow":
            return True
        if self.mode == "AlwaysDeny":
            return False
        return self.rbac(user, info).allowed

    def rules_for(
        self, user: UserInfo, *, namespace: str = ""
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The user's Kubernetes-API rules in ``namespace`` (or cluster-wide): resource, non-resource."""
        scope = resource_scope(api_group="", resource="pods", namespace=namespace, devops="", workspace="")
        info = RequestInfo(
            path="", verb="get", is_resource_request=True, api_prefix="api", namespace=namespace,
            resource="pods", resource_scope=scope,
        )  # fmt: skip
        resource: list[dict[str, Any]] = [
            {"verbs": ["create"], "apiGroups": [group], "resources": [res]}
            for group, res in sorted(SELF_REVIEWS)
        ]
        non_resource: list[dict[str, Any]] = [
            {
                "verbs": ["get"],
                "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/openapi/*", "/version"],
            }
        ]
        for _source, rules, role in self._rule_sets(user, info):
            if role in CONSOLE_ROLES:
                continue
            for rule in rules:
                if not isinstance(rule, Mapping):
                    continue
                if rule.get("nonResourceURLs"):
                    non_resource.append({"verbs": list(rule.get("verbs") or []),
                                         "nonResourceURLs": list(rule["nonResourceURLs"])})  # fmt: skip
                else:
                    entry = {k: list(rule.get(k) or []) for k in ("verbs", "apiGroups", "resources")}
                    if rule.get("resourceNames"):
                        entry["resourceNames"] = list(rule["resourceNames"])
                    resource.append(entry)
        return resource, non_resource

    def authorize_real(self, user: UserInfo, info: RequestInfo, *, api_group: str) -> Decision:
        """A deferred resources.kubesphere.io request, checked against the resource's real group."""
        if self.mode != "RBAC":
            return self.authorize(user, info)
        # The objects are served as the Kubernetes API has them, so it is judged as a Kubernetes read.
        return self.rbac(user, replace(info, api_group=api_group, api_prefix="apis" if api_group else "api"))

    def forbidden_message(self, user: UserInfo, info: RequestInfo) -> str:
        """Kubernetes' wording: ``<res>.<group> "<name>" is forbidden: User "u" cannot <verb> ...``."""
        if not info.is_resource_request:
            return f'forbidden: User "{user.name}" cannot {info.verb} path "{info.path}"'
        resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
        why = f'User "{user.name}" cannot {info.verb} resource "{resource}" in API group "{info.api_group}"'
        why += f' in the namespace "{info.namespace}"' if info.namespace else " at the cluster scope"
        qualified = f"{info.resource}.{info.api_group}" if info.api_group else info.resource
        if info.name:
            return f'{qualified} "{info.name}" is forbidden: {why}'
        return f"{qualified} is forbidden: {why}"

    # -- bindings ----------------------------------------------------------------------------
    def _defers(self, info: RequestInfo) -> bool:
        return (
            info.api_group == RESOURCES_GROUP
            and info.api_prefix == "kapis"
            and info.api_version == RESOURCES_VERSION
            and not info.cluster
            and info.is_resource_request
            and info.resource_scope != GLOBAL_SCOPE
            and info.verb in ("get", "list")
        )

    def _rule_sets(self, user: UserInfo, info: RequestInfo) -> Iterator[tuple[str, list[Any], str]]:
        """(description, rules, GlobalRole name or "") for each binding that names the user."""
        for binding in self._global.bindings(self.caches[kube.GLOBALROLEBINDINGS], user):
            ref = binding.get("roleRef") or {}
            role = self.caches[kube.GLOBALROLES].get(str(ref.get("name") or ""))
            yield (
                _describe("GlobalRoleBinding", binding),
                _rules(role),
                str(role["metadata"]["name"]) if role is not None else "",
            )
        scope = info.resource_scope
        if scope == GLOBAL_SCOPE:
            return
        namespace = info.namespace
        workspace = info.workspace if scope == WORKSPACE_SCOPE else ""
        if scope == NAMESPACE_SCOPE:
            workspace = _label(self.caches[kube.NAMESPACES].get(info.namespace), WORKSPACE_LABEL)
        elif scope == DEVOPS_SCOPE:
            project = self.caches[kube.DEVOPSPROJECTS].get(info.devops)
            workspace = _label(project, WORKSPACE_LABEL)
            namespace = str(((project or {}).get("status") or {}).get("adminNamespace") or "")
        if scope in (WORKSPACE_SCOPE, NAMESPACE_SCOPE, DEVOPS_SCOPE) and workspace:
            yield from self._workspace_rules(user, workspace)
        if scope in (NAMESPACE_SCOPE, DEVOPS_SCOPE) and namespace:
            yield from self._namespace_rules(user, namespace)
        for binding in self._cluster.bindings(self.caches[kube.CLUSTERROLEBINDINGS], user):
            ref = binding.get("roleRef") or {}
            role = self.caches[kube.CLUSTERROLES].get(str(ref.get("name") or ""))
            yield _describe("ClusterRoleBinding", binding), _rules(role), ""

    def _workspace_rules(self, user: UserInfo, workspace: str) -> Iterator[tuple[str, list[Any], str]]:
        for binding in self.caches[kube.WORKSPACEROLEBINDINGS].list(labels={WORKSPACE_LABEL: workspace}):
            if binding_applies(user, binding):
                ref = binding.get("roleRef") or {}
                role = self.caches[kube.WORKSPACEROLES].get(str(ref.get("name") or ""))
                owner = _label(role, WORKSPACE_LABEL)
                if role is None or (owner and owner != workspace):
                    continue  # a binding may not borrow another workspace's role
                yield _describe("WorkspaceRoleBinding", binding), _rules(role), ""

    def _namespace_rules(self, user: UserInfo, namespace: str) -> Iterator[tuple[str, list[Any], str]]:
        for binding in self.caches[kube.ROLEBINDINGS].list(namespace=namespace):
            if not binding_applies(user, binding, namespace=namespace):
                continue
            ref = binding.get("roleRef") or {}
            name = str(ref.get("name") or "")
            if ref.get("kind") == "ClusterRole":
                role = self.caches[kube.CLUSTERROLES].get(name)
            else:
                role = self.caches[kube.ROLES].get(name, namespace=namespace)
            yield _describe("RoleBinding", binding), _rules(role), ""

    def visible(self, user: UserInfo, bindings: Iterable[Mapping[str, Any]], *, namespace: str = "") -> bool:
        """Whether any of ``bindings`` names the user (tenant listings)."""
        return any(binding_applies(user, b, namespace=namespace) for b in bindings)


def _label(obj: Mapping[str, Any] | None, key: str) -> str:
    if not obj:
        return ""
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(key) or "")


def _rules(role: Mapping[str, Any] | None) -> list[Any]:
    rules = (role or {}).get("rules")
    return rules if isinstance(rules, list) else []


def _describe(kind: str, binding: Mapping[str, Any]) -> str:
    meta = binding.get("metadata") or {}
    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return f"{kind} {where}{meta.get('name')}"
