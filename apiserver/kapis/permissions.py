"""What the console turns into menus: the role templates a member's role aggregates, at each scope.

* ``GET /users/{user}/globalroles``: the templates of the user's GlobalRole;
* ``GET /clustermembers/{user}/clusterroles``: of the user's ClusterRole;
* ``GET /workspaces/{ws}/workspacemembers/{user}/workspaceroles``: of every WorkspaceRole bound in
  the workspace to the user or one of the user's groups (``spec.groups``);
* ``GET /namespaces/{ns}/members/{user}/roles`` (and ``/devops/{d}/members/{user}/roles``): of every
  Role bound in the namespace to the user or one of the user's groups.

Each answers a JSON array (not a list body) of the template objects named in the bound role's
``iam.kubesphere.io/aggregation-roles``, each once, as KubeSphere does; the console reads their
``iam.kubesphere.io/role-template-rules``.  No binding, or a role without the annotation: ``[]``.
Names that are not templates of the scope (a Role of a DevOps project's kind in a plain project)
are skipped.  Global and cluster bindings match User subjects only, as KubeSphere's do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from apiserver import kube
from apiserver.errors import not_found
from apiserver.identity import UserInfo
from apiserver.kapis import common, iam
from apiserver.kapis.roles import AGGREGATION, Scope
from apiserver.openapi import Routes
from apiserver.rbac import SubjectIndex
from apiserver.rules import binding_applies

routes = Routes(iam.PREFIX, "IAM: permissions")
ROLES_ARRAY: dict[str, Any] = {
    "type": "array",
    "description": "Role templates; the console reads iam.kubesphere.io/role-template-rules",
    "items": {"type": "object", "additionalProperties": True},
}
_GLOBAL, _CLUSTER = SubjectIndex(), SubjectIndex()


def member_info(request: web.Request, name: str, *, with_groups: bool) -> UserInfo:
    """The member as bindings see them; 404 for a user that does not exist."""
    user = common.ctx(request).caches[kube.USERS].get(name)
    if user is None:
        raise not_found("user.iam.kubesphere.io", name)
    groups = tuple(str(g) for g in (user.get("spec") or {}).get("groups") or ()) if with_groups else ()
    return UserInfo(name=name, groups=groups)


def templates_of(
    roles: Iterable[dict[str, Any] | None], lookup: Callable[[str], dict[str, Any] | None]
) -> list[dict[str, Any]]:
    """The templates the roles' aggregation annotations name, each once, in the order first named."""
    found: dict[str, dict[str, Any]] = {}
    for role in roles:
        raw = common.annotations_of(role).get(AGGREGATION)
        try:
            names = json.loads(raw) if raw else []
        except ValueError:
            continue
        for name in names if isinstance(names, list) else []:
            if isinstance(name, str) and name not in found and common.valid_name(name):
                template = lookup(name)
                if template is not None:
                    found[name] = template
    return list(found.values())


def _ref(binding: dict[str, Any]) -> str:
    return str((binding.get("roleRef") or {}).get("name") or "")


def _first_binding_templates(bindings: list[dict[str, Any]], roles: Any) -> web.Response:
    """The templates of the role the first binding (by name) grants: as in KubeSphere, a user
    holds one global role and one cluster role."""
    bindings = sorted(bindings, key=lambda b: str(b["metadata"]["name"]))
    chosen = [roles.get(_ref(bindings[0]))] if bindings else []
    return web.json_response(templates_of(chosen, roles.get))


@routes.add(
    "GET",
    "/users/{user}/globalroles",
    summary="Role templates of the user's global role",
    response=ROLES_ARRAY,
)
async def global_templates(request: web.Request) -> web.Response:
    name = common.name_param(request, "user", kube.USERS)
    member = member_info(request, name, with_groups=False)
    caches = common.ctx(request).caches
    bindings = [
        b for b in _GLOBAL.bindings(caches[kube.GLOBALROLEBINDINGS], member) if binding_applies(member, b)
    ]
    return _first_binding_templates(bindings, caches[kube.GLOBALROLES])


@routes.add(
    "GET",
    "/clustermembers/{member}/clusterroles",
    summary="Role templates of the member's cluster role",
    response=ROLES_ARRAY,
)
async def cluster_templates(request: web.Request) -> web.Response:
    name = common.name_param(request, "member", kube.USERS)
    member = member_info(request, name, with_groups=False)
    caches = common.ctx(request).caches
    bindings = [
        b
        for b in _CLUSTER.bindings(caches[kube.CLUSTERROLEBINDINGS], member)
        if any(s.get("kind") == "User" and s.get("name") == name for s in b.get("subjects") or [])
    ]
    return _first_binding_templates(bindings, caches[kube.CLUSTERROLES])


@routes.add(
    "GET",
    "/workspaces/{workspace}/workspacemembers/{member}/workspaceroles",
    summary="Role templates of the member's workspace roles (the user's and their groups')",
    response=ROLES_ARRAY,
)
async def workspace_templates(request: web.Request) -> web.Response:
    ws = common.name_param(request, "workspace", kube.WORKSPACETEMPLATES)
    name = common.name_param(request, "member", kube.USERS)
    member = member_info(request, name, with_groups=True)
    caches = common.ctx(request).caches
    roles = caches[kube.WORKSPACEROLES]
    bound = []
    for binding in caches[kube.WORKSPACEROLEBINDINGS].list(labels={common.WORKSPACE_LABEL: ws}):
        if binding_applies(member, binding):
            role = roles.get(_ref(binding))
            if role is not None and common.labels(role).get(common.WORKSPACE_LABEL, ws) == ws:
                bound.append(role)
    bound.sort(key=lambda r: str(r["metadata"]["name"]))
    return web.json_response(templates_of(bound, roles.get))


def _namespace_templates(scope: Scope) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        ns = scope.ns(request) or ""
        name = common.name_param(request, "member", kube.USERS)
        member = member_info(request, name, with_groups=True)
        caches = common.ctx(request).caches
        roles = caches[kube.ROLES]
        bound = []
        for binding in caches[kube.ROLEBINDINGS].list(namespace=ns):
            ref = binding.get("roleRef") or {}
            if ref.get("kind", "Role") == "Role" and binding_applies(member, binding, namespace=ns):
                role = roles.get(_ref(binding), namespace=ns)
                if role is not None:
                    bound.append(role)
        bound.sort(key=lambda r: str(r["metadata"]["name"]))
        return web.json_response(templates_of(bound, lambda n: roles.get(n, namespace=ns)))

    return handler


routes.add(
    "GET",
    "/namespaces/{namespace}/members/{member}/roles",
    summary="Role templates of the member's roles in the namespace",
    response=ROLES_ARRAY,
)(_namespace_templates(Scope(kube.ROLES, "", namespace="namespace")))
routes.add(
    "GET",
    "/devops/{devops}/members/{member}/roles",
    summary="Role templates of the member's roles in the DevOps project",
    response=ROLES_ARRAY,
)(_namespace_templates(Scope(kube.ROLES, "", namespace="devops")))
