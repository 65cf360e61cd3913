"""Role CRUD at each IAM scope, with role-template aggregation.

``/globalroles``, ``/clusterroles``, ``/workspaces/{ws}/workspaceroles``
(plus ``/workspaceroles`` across workspaces), ``/namespaces/{ns}/roles`` and
``/devops/{d}/roles`` (Roles in the project's admin namespace).

As in KubeSphere, a role created or replaced through the API gets its rules
only from role templates: the ``iam.kubesphere.io/aggregation-roles``
annotation (a JSON list of role names of the same kind; for a Role, in the
same namespace; for a WorkspaceRole, a template or a role of the same
workspace) and the submitted rules are replaced by the templates' rules
concatenated.  A merge PATCH recomputes them only when it carries the
annotation.  A workspace's roles are labelled ``kubesphere.io/workspace`` and
named ``<ws>-…`` (WorkspaceRoles are cluster-scoped: one workspace must not
take the names another's controller will create); another workspace's role is
404 here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from apiserver import kube
from apiserver.errors import APIError, not_found
from apiserver.kapis import common
from apiserver.kapis.iam import PREFIX
from apiserver.openapi import LIST, LIST_PARAMS, OBJECT, SUCCESS, Routes

AGGREGATION = "iam.kubesphere.io/aggregation-roles"
TEMPLATE_LABEL = "iam.kubesphere.io/role-template"
routes = Routes(PREFIX, "IAM: roles")


@dataclass(frozen=True)
class Scope:
    res: kube.Resource
    path: str
    workspace: bool = False
    namespace: str = ""  # "namespace" or "devops": the path parameter naming it

    def ns(self, request: web.Request) -> str | None:
        if self.namespace == "namespace":
            return common.name_param(request, "namespace", kube.NAMESPACES)
        if self.namespace == "devops":
            name = common.name_param(request, "devops", kube.DEVOPSPROJECTS)
            project = common.ctx(request).caches[kube.DEVOPSPROJECTS].get(name)
            admin = ((project or {}).get("status") or {}).get("adminNamespace")
            if not admin:
                raise not_found("devopsproject.devops.kubesphere.io", name)
            return str(admin)
        return None

    def ws(self, request: web.Request) -> str:
        return common.name_param(request, "workspace", kube.WORKSPACETEMPLATES) if self.workspace else ""


SCOPES = (
    Scope(kube.GLOBALROLES, "/globalroles"),
    Scope(kube.CLUSTERROLES, "/clusterroles"),
    Scope(kube.WORKSPACEROLES, "/workspaces/{workspace}/workspaceroles", workspace=True),
    Scope(kube.ROLES, "/namespaces/{namespace}/roles", namespace="namespace"),
    Scope(kube.ROLES, "/devops/{devops}/roles", namespace="devops"),
)


def aggregated_rules(
    request: web.Request, scope: Scope, meta: dict[str, Any], ns: str | None
) -> list[Any] | None:
    """The templates' rules when ``meta`` carries the aggregation annotation, else None."""
    raw = (meta.get("annotations") or {}).get(AGGREGATION)
    if raw is None:
        return None
    try:
        names = json.loads(raw)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise APIError(400, f"annotation {AGGREGATION} must be a JSON list of role names")
    cache = common.ctx(request).caches[scope.res]
    ws = scope.ws(request)
    rules: list[Any] = []
    for name in names:
        template = cache.get(name, namespace=ns) if common.valid_name(name) else None
        if template is not None and ws:
            tl = common.labels(template)
            if tl.get(TEMPLATE_LABEL) != "true" and tl.get(common.WORKSPACE_LABEL) != ws:
                template = None
        if template is None:
            raise not_found(common.qualified(scope.res), name)
        rules.extend(template.get("rules") or [])
    return rules


def _owned(scope: Scope, request: web.Request, obj: dict[str, Any] | None, name: str) -> dict[str, Any]:
    if obj is None or (
        scope.workspace and common.labels(obj).get(common.WORKSPACE_LABEL) != scope.ws(request)
    ):
        raise not_found(common.qualified(scope.res), name)
    return obj


def _handlers(scope: Scope) -> None:
    res = scope.res
    one = scope.path + "/{name}"
    kind = res.kind

    def lookup(request: web.Request) -> tuple[str, str | None, dict[str, Any]]:
        ns = scope.ns(request)
        name = common.name_param(request, "name", res)
        return name, ns, _owned(scope, request, common.ctx(request).caches[res].get(name, namespace=ns), name)

    async def list_roles(request: web.Request) -> web.Response:
        ns = scope.ns(request)
        items = common.ctx(request).caches[res].list(namespace=ns)
        if scope.workspace:
            ws = scope.ws(request)
            q = request.query
            wanted = f"{TEMPLATE_LABEL}=true"
            if q.get("label") != wanted and q.get("labelSelector") != wanted:
                items = [r for r in items if common.labels(r).get(common.WORKSPACE_LABEL) == ws]
        return common.listing(request, items)

    async def get_role(request: web.Request) -> web.Response:
        return common.ok(lookup(request)[2])

    async def prepare(request: web.Request, url_name: str | None) -> tuple[dict[str, Any], str | None]:
        ns = scope.ns(request)
        body = await common.object_body(request, kind=kind)
        name = common.check_name(body, url_name=url_name)
        body["metadata"]["name"] = name
        if scope.workspace:
            ws = scope.ws(request)
            if not name.startswith(f"{ws}-"):
                # WorkspaceRoles share one cluster-wide namespace of names: no squatting on another's.
                raise APIError(
                    422, f'WorkspaceRole "{name}" is invalid: metadata.name: must start with "{ws}-"'
                )
            body["metadata"].setdefault("labels", {})[common.WORKSPACE_LABEL] = ws
        if ns:
            body["metadata"]["namespace"] = ns
        body["rules"] = aggregated_rules(request, scope, body["metadata"], ns) or []
        body.update(apiVersion=res.api_version, kind=kind)
        return body, ns

    async def create_role(request: web.Request) -> web.Response:
        body, ns = await prepare(request, None)
        return common.ok(await common.ctx(request).kube.create(res, body, namespace=ns))

    async def update_role(request: web.Request) -> web.Response:
        name, ns, old = lookup(request)
        body, ns = await prepare(request, name)
        body["metadata"].setdefault("resourceVersion", old["metadata"].get("resourceVersion"))
        return common.ok(await common.ctx(request).kube.replace(res, body, namespace=ns))

    async def patch_role(request: web.Request) -> web.Response:
        name, ns, _ = lookup(request)
        patch = await common.json_body(request)
        if not isinstance(patch, dict) or not isinstance(patch.setdefault("metadata", {}), dict):
            raise APIError(400, "the patch must be a JSON merge patch object")
        patch["metadata"].pop("name", None)
        patch["metadata"].pop("namespace", None)
        if scope.workspace and "labels" in patch["metadata"]:
            if not isinstance(patch["metadata"]["labels"], dict):
                raise APIError(400, "metadata.labels must be an object")
            patch["metadata"]["labels"][common.WORKSPACE_LABEL] = scope.ws(request)
        rules = aggregated_rules(request, scope, patch["metadata"], ns)
        if rules is not None:
            patch["rules"] = rules
        return common.ok(await common.ctx(request).kube.patch(res, name, patch, namespace=ns))

    async def delete_role(request: web.Request) -> web.Response:
        name, ns, _ = lookup(request)
        await common.ctx(request).kube.delete(res, name, namespace=ns)
        return common.success()

    table: list[tuple[str, str, str, Callable[..., Any], dict[str, Any]]] = [
        ("GET", scope.path, f"List {kind}s", list_roles, {"query": LIST_PARAMS, "response": LIST}),
        (
            "POST",
            scope.path,
            f"Create a {kind} (rules from aggregation-roles)",
            create_role,
            {"body": OBJECT},
        ),
        ("GET", one, f"Get a {kind}", get_role, {}),
        ("PUT", one, f"Replace a {kind} (rules from aggregation-roles)", update_role, {"body": OBJECT}),
        ("PATCH", one, f"Merge-patch a {kind}", patch_role, {"body": OBJECT}),
        ("DELETE", one, f"Delete a {kind}", delete_role, {"response": SUCCESS}),
    ]
    for method, path, summary, handler, extra in table:
        routes.add(method, path, summary=summary, **extra)(handler)


for _scope in SCOPES:
    _handlers(_scope)


@routes.add(
    "GET",
    "/workspaceroles",
    summary="List WorkspaceRoles of every workspace",
    query=LIST_PARAMS,
    response=LIST,
)
async def all_workspace_roles(request: web.Request) -> web.Response:
    return common.listing(request, common.ctx(request).caches[kube.WORKSPACEROLES].list())
