"""Kubernetes RBAC rule matching, and the ``authenticated`` role's grants written as Python.

``rule_allows`` is Kubernetes' ``RuleAllows``: verb, API group, resource
(``resource/subresource``, ``*`` and ``*/sub``), resource names, or for
non-resource requests the URL (exact, ``*``, or a ``prefix*``).  KubeSphere
keeps the upper-case HTTP method as the verb of a non-resource request, so
non-resource verbs are compared without regard to case.

KubeSphere's built-in ``authenticated`` GlobalRole carries an OPA module in
``iam.kubesphere.io/rego-override``.  This server evaluates no rego; the
module's grants are ``authenticated_allows`` instead:

* any verb on ``users/<self>`` (and its subresources) in ``iam.kubesphere.io``,
  and ``get users/<self>/kubeconfig`` in ``resources.kubesphere.io``;
* get/list/watch of one's own membership (``*members/<self>``);
* ``GET /api`` (Kubernetes discovery root);
* get/list/watch on ``tenant.kubesphere.io`` resources.

and, as Kubernetes grants every authenticated user (``system:discovery``,
``system:basic-user``), so that kubectl works through this server:

* ``GET`` of discovery (``/api/...``, ``/apis/...`` below the resource level,
  ``/openapi/...``, ``/version``);
* ``create`` of ``selfsubjectaccessreviews``, ``selfsubjectrulesreviews`` and
  ``selfsubjectreviews`` (answered by this server about the caller,
  :mod:`apiserver.selfreview`).

The resource grants hold only outside the Kubernetes API (``/kapis``), where
the handlers decide what a user may change about themselves and filter what
each caller sees.  KubeSphere's module also matches ``/apis/iam.kubesphere.io/
.../users/<self>``, which lets a user rewrite their own groups and state (and
read their password hash) through the proxy; we do not copy that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiserver.identity import UserInfo
from apiserver.requestinfo import RequestInfo

ALL = "*"
READ_VERBS = frozenset({"get", "list", "watch"})
IAM_GROUP = "iam.kubesphere.io"
TENANT_GROUP = "tenant.kubesphere.io"
RESOURCES_GROUP = "resources.kubesphere.io"

Rule = Mapping[str, Any]


def _strings(rule: Rule, key: str) -> list[str]:
    value = rule.get(key) or []
    return [str(v) for v in value] if isinstance(value, list) else []


def verb_matches(rule: Rule, verb: str, *, fold_case: bool = False) -> bool:
    for rule_verb in _strings(rule, "verbs"):
        if rule_verb in (ALL, verb) or (fold_case and rule_verb.lower() == verb.lower()):
            return True
    return False


def api_group_matches(rule: Rule, group: str) -> bool:
    return any(g in (ALL, group) for g in _strings(rule, "apiGroups"))


def resource_matches(rule: Rule, combined: str, subresource: str) -> bool:
    for resource in _strings(rule, "resources"):
        if resource in (ALL, combined):
            return True
        if subresource and resource == f"*/{subresource}":
            return True
    return False


def resource_name_matches(rule: Rule, name: str) -> bool:
    names = _strings(rule, "resourceNames")
    return not names or name in names


def non_resource_url_matches(rule: Rule, path: str) -> bool:
    for url in _strings(rule, "nonResourceURLs"):
        if url in (ALL, path):
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def rule_allows(info: RequestInfo, rule: Rule) -> bool:
    """Whether one PolicyRule allows the request."""
    if info.is_resource_request:
        combined = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
        return (
            verb_matches(rule, info.verb)
            and api_group_matches(rule, info.api_group)
            and resource_matches(rule, combined, info.subresource)
            and resource_name_matches(rule, info.name)
        )
    return verb_matches(rule, info.verb, fold_case=True) and non_resource_url_matches(rule, info.path)


#: Discovery documents: how deep each root goes before it names resources (openapi holds only schemas).
DISCOVERY_DEPTH = {"api": 2, "apis": 3, "openapi": 8, "version": 1}
SELF_REVIEWS = frozenset(
    {
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    }
)


def is_discovery(path: str) -> bool:
    """``/api``, ``/api/v1``, ``/apis[/g[/v]]``, ``/openapi/...``, ``/version``: no empty or dot segment."""
    parts = path.rstrip("/").split("/")[1:]
    if not parts or any(p in ("", ".", "..") for p in parts):
        return False
    depth = DISCOVERY_DEPTH.get(parts[0])
    return depth is not None and len(parts) <= depth


def authenticated_allows(user: UserInfo, info: RequestInfo) -> bool:
    """The ``authenticated`` GlobalRole's rego-override grants, as explicit rules."""
    if not info.is_resource_request:
        return info.verb.upper() in ("GET", "HEAD") and is_discovery(info.path)
    if info.verb == "create" and (info.api_group, info.resource) in SELF_REVIEWS and not info.name:
        return info.is_kubernetes_request
    if info.is_kubernetes_request:
        return False  # /api, /apis: these grants are for the /kapis handlers, which check what they allow
    if info.api_group == IAM_GROUP and info.resource == "users" and info.name == user.name:
        return True
    if (info.api_group, info.resource, info.subresource, info.verb) == (
        RESOURCES_GROUP,
        "users",
        "kubeconfig",
        "get",
    ):
        return info.name == user.name  # one's own kubeconfig download
    if info.resource.endswith("members") and info.verb in READ_VERBS and info.name == user.name:
        return True
    return info.api_group == TENANT_GROUP and info.verb in READ_VERBS


def subject_applies(user: UserInfo, subject: Mapping[str, Any], *, namespace: str = "") -> bool:
    """Kubernetes' appliesToUser: a User by name, a Group by membership, a ServiceAccount by username."""
    kind = subject.get("kind")
    name = str(subject.get("name") or "")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa_namespace = str(subject.get("namespace") or namespace)
        return bool(sa_namespace) and user.name == f"system:serviceaccount:{sa_namespace}:{name}"
    return False


def binding_applies(
    user: UserInfo, binding: Mapping[str, Any], *, namespace: str = ""
) -> dict[str, Any] | None:
    """The first subject of ``binding`` that names ``user``, if any."""
    for subject in binding.get("subjects") or []:
        if isinstance(subject, dict) and subject_applies(user, subject, namespace=namespace):
            return subject
    return None
