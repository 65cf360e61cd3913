"""/kapis/tenant.kubesphere.io/v1alpha2: workspaces and their namespaces, as each caller may see them.

* ``GET /workspaces`` lists WorkspaceTemplates: all of them for a caller who
  may list workspaces in every API group at global scope (KubeSphere's test:
  a rule with ``apiGroups: ["*"]``), otherwise those where the caller is a
  subject of a WorkspaceRoleBinding.  One workspace is shown under the same
  rule (403 otherwise).
* Namespaces: all (of the workspace) for a caller who may list core
  ``namespaces`` there, otherwise those holding a RoleBinding for the caller.
  A namespace labelled for another workspace is 404 under this one.
* ``POST /workspaces/{ws}/namespaces`` forces the ``kubesphere.io/workspace``
  label and, when the body names no creator, records the caller as
  ``kubesphere.io/creator`` (the namespace controller makes them its admin).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver import kube
from apiserver.errors import APIError, not_found
from apiserver.identity import AUTHENTICATED_GROUP, UserInfo
from apiserver.kapis import common
from apiserver.openapi import LIST, LIST_PARAMS, OBJECT, SUCCESS, Param, Routes
from apiserver.requestinfo import CLUSTER_SCOPE, GLOBAL_SCOPE, WORKSPACE_SCOPE
from apiserver.rules import binding_applies

PREFIX = "/kapis/tenant.kubesphere.io/v1alpha2"
routes = Routes(PREFIX, "Tenant")
WS = "/workspaces/{workspace}"
DELETE_PARAMS = (Param("propagationPolicy", "Orphan, Background or Foreground"),)
PROPAGATION = ("Orphan", "Background", "Foreground")
ANY_PATCH = {
    "description": "A JSON patch (array) or a JSON merge patch (object)",
    "oneOf": [{"type": "array", "items": {"type": "object"}}, {"type": "object"}],
}


def sees_all_workspaces(request: web.Request) -> bool:
    return common.ctx(request).authorizer.allows(
        common.caller(request), verb="list", resource="workspaces", api_group="*", scope=GLOBAL_SCOPE
    )


def my_workspaces(request: web.Request) -> set[str]:
    user = common.caller(request)
    bindings = common.ctx(request).caches[kube.WORKSPACEROLEBINDINGS].list()
    return {common.labels(b).get(common.WORKSPACE_LABEL, "") for b in bindings if binding_applies(user, b)}


def _bound_in(request: web.Request, user: UserInfo, namespace: str) -> bool:
    bindings = common.ctx(request).caches[kube.ROLEBINDINGS].list(namespace=namespace)
    return any(binding_applies(user, b, namespace=namespace) for b in bindings)


def visible_namespaces(
    request: web.Request, namespaces: list[dict[str, Any]], *, workspace: str, user: UserInfo | None = None
) -> list[Any]:
    user = user or common.caller(request)
    scope = WORKSPACE_SCOPE if workspace else CLUSTER_SCOPE
    authz = common.ctx(request).authorizer
    if authz.allows(user, verb="list", resource="namespaces", workspace=workspace, scope=scope):
        return namespaces
    return [n for n in namespaces if _bound_in(request, user, n["metadata"]["name"])]


def _template(request: web.Request) -> tuple[str, dict[str, Any]]:
    name = common.name_param(request, "workspace", kube.WORKSPACETEMPLATES)
    obj = common.ctx(request).caches[kube.WORKSPACETEMPLATES].get(name)
    if obj is None:
        raise not_found("workspacetemplate.tenant.kubesphere.io", name)
    return name, obj


def _visible_template(request: web.Request) -> tuple[str, dict[str, Any]]:
    name, obj = _template(request)
    if not sees_all_workspaces(request) and name not in my_workspaces(request):
        raise common.deny(
            request, verb="get", resource="workspaces", api_group="tenant.kubesphere.io", name=name
        )
    return name, obj


@routes.add("GET", "/workspaces", summary="Workspaces the caller may see", query=LIST_PARAMS, response=LIST)
async def list_workspaces(request: web.Request) -> web.Response:
    items = common.ctx(request).caches[kube.WORKSPACETEMPLATES].list()
    if not sees_all_workspaces(request):
        mine = my_workspaces(request)
        items = [w for w in items if w["metadata"]["name"] in mine]
    return common.listing(request, items)


@routes.add("POST", "/workspaces", summary="Create a workspace (a WorkspaceTemplate)", body=OBJECT)
async def create_workspace(request: web.Request) -> web.Response:
    body = await common.object_body(request, kind="WorkspaceTemplate")
    common.check_name_or_generate(body)
    body.update(apiVersion=kube.WORKSPACETEMPLATES.api_version, kind="WorkspaceTemplate")
    spec = body.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise APIError(400, "spec must be an object")
    template = spec.setdefault("template", {})
    tspec = template.setdefault("spec", {}) if isinstance(template, dict) else None
    if not isinstance(tspec, dict):
        raise APIError(400, "spec.template.spec must be an object")
    user = common.caller(request)
    if not tspec.get("manager") and not user.anonymous:
        tspec["manager"] = user.name
    return common.ok(await common.ctx(request).kube.create(kube.WORKSPACETEMPLATES, body))


@routes.add("GET", WS, summary="Get a workspace")
async def get_workspace(request: web.Request) -> web.Response:
    return common.ok(_visible_template(request)[1])


@routes.add("PUT", WS, summary="Replace a workspace", body=OBJECT)
async def update_workspace(request: web.Request) -> web.Response:
    name, old = _template(request)
    body = await common.object_body(request, kind="WorkspaceTemplate")
    body["metadata"]["name"] = common.check_name(body, url_name=name)
    body.update(apiVersion=kube.WORKSPACETEMPLATES.api_version, kind="WorkspaceTemplate")
    body["metadata"].setdefault("resourceVersion", old["metadata"].get("resourceVersion"))
    return common.ok(await common.ctx(request).kube.replace(kube.WORKSPACETEMPLATES, body))


async def _patch(request: web.Request, res: kube.Resource, name: str) -> dict[str, Any]:
    patch = await common.json_body(request)
    json_patch = isinstance(patch, list) or request.content_type == "application/json-patch+json"
    if not isinstance(patch, list | dict) or (json_patch and not isinstance(patch, list)):
        raise APIError(400, "the body must be a JSON patch (a list) or a JSON merge patch (an object)")
    kind = "json" if json_patch else "merge"
    result: dict[str, Any] = await common.ctx(request).kube.patch(res, name, patch, patch_type=kind)
    return result


@routes.add("PATCH", WS, summary="Patch a workspace (JSON patch, or merge patch)", body=ANY_PATCH)
async def patch_workspace(request: web.Request) -> web.Response:
    name, _ = _template(request)
    return common.ok(await _patch(request, kube.WORKSPACETEMPLATES, name))


@routes.add("DELETE", WS, summary="Delete a workspace", query=DELETE_PARAMS, response=SUCCESS)
async def delete_workspace(request: web.Request) -> web.Response:
    name, _ = _template(request)
    policy = request.query.get("propagationPolicy") or None
    if policy is not None and policy not in PROPAGATION:
        raise APIError(400, f"propagationPolicy must be one of {', '.join(PROPAGATION)}")
    await common.ctx(request).kube.delete(kube.WORKSPACETEMPLATES, name, propagation=policy)
    return common.success()


@routes.add("GET", "/namespaces", summary="Namespaces the caller may see", query=LIST_PARAMS, response=LIST)
async def list_all_namespaces(request: web.Request) -> web.Response:
    items = common.ctx(request).caches[kube.NAMESPACES].list()
    return common.listing(request, visible_namespaces(request, items, workspace=""))


@routes.add(
    "GET",
    WS + "/namespaces",
    summary="A workspace's namespaces the caller may see",
    query=LIST_PARAMS,
    response=LIST,
)
async def list_namespaces(request: web.Request) -> web.Response:
    ws = common.name_param(request, "workspace", kube.WORKSPACETEMPLATES)
    items = common.ctx(request).caches[kube.NAMESPACES].list(labels={common.WORKSPACE_LABEL: ws})
    return common.listing(request, visible_namespaces(request, items, workspace=ws))


@routes.add(
    "GET",
    WS + "/workspacemembers/{member}/namespaces",
    summary="A workspace's namespaces a member may see",
    query=LIST_PARAMS,
    response=LIST,
)
async def list_member_namespaces(request: web.Request) -> web.Response:
    """What the console shows as a member's projects: the namespaces the member (not the caller) sees.

    The caller must be the member, or may read the workspace's members (KubeSphere lets anyone ask).
    """
    ws = common.name_param(request, "workspace", kube.WORKSPACETEMPLATES)
    name = common.name_param(request, "member", kube.USERS)
    user = common.caller(request)
    authz = common.ctx(request).authorizer
    if user.name != name and not authz.allows(
        user, verb="get", resource="workspacemembers", api_group="iam.kubesphere.io", workspace=ws,
        scope=WORKSPACE_SCOPE,
    ):  # fmt: skip
        raise common.deny(
            request, verb="get", resource="workspacemembers", api_group="iam.kubesphere.io", name=name
        )
    found = common.ctx(request).caches[kube.USERS].get(name)
    if found is None:
        raise not_found("user.iam.kubesphere.io", name)
    groups = tuple(str(g) for g in (found.get("spec") or {}).get("groups") or ())
    member = UserInfo(name=name, groups=(*groups, AUTHENTICATED_GROUP))
    items = common.ctx(request).caches[kube.NAMESPACES].list(labels={common.WORKSPACE_LABEL: ws})
    return common.listing(request, visible_namespaces(request, items, workspace=ws, user=member))


@routes.add("POST", WS + "/namespaces", summary="Create a namespace in a workspace", body=OBJECT)
async def create_namespace(request: web.Request) -> web.Response:
    ws, _ = _template(request)
    body = await common.object_body(request, kind="Namespace")
    common.check_name(body)
    body.update(apiVersion="v1", kind="Namespace")
    body["metadata"].setdefault("labels", {})[common.WORKSPACE_LABEL] = ws
    user = common.caller(request)
    if not user.anonymous:
        body["metadata"].setdefault("annotations", {}).setdefault(common.CREATOR_ANNOTATION, user.name)
    return common.ok(await common.ctx(request).kube.create(kube.NAMESPACES, body))


def _namespace(request: web.Request) -> tuple[str, str, dict[str, Any]]:
    ws = common.name_param(request, "workspace", kube.WORKSPACETEMPLATES)
    name = common.name_param(request, "namespace", kube.NAMESPACES)
    obj = common.ctx(request).caches[kube.NAMESPACES].get(name)
    if obj is None or common.labels(obj).get(common.WORKSPACE_LABEL) != ws:
        raise not_found("namespaces", name)
    return ws, name, obj


@routes.add("GET", WS + "/namespaces/{namespace}", summary="Get a namespace of a workspace")
async def get_namespace(request: web.Request) -> web.Response:
    _, name, obj = _namespace(request)
    user = common.caller(request)
    authz = common.ctx(request).authorizer
    if not authz.allows(user, verb="get", resource="namespaces", namespace=name) and not _bound_in(
        request, user, name
    ):
        raise common.deny(request, verb="get", resource="namespaces", api_group="", name=name)
    return common.ok(obj)


@routes.add("PUT", WS + "/namespaces/{namespace}", summary="Replace a namespace of a workspace", body=OBJECT)
async def update_namespace(request: web.Request) -> web.Response:
    ws, name, old = _namespace(request)
    body = await common.object_body(request, kind="Namespace")
    body["metadata"]["name"] = common.check_name(body, url_name=name)
    body.update(apiVersion="v1", kind="Namespace")
    body["metadata"].setdefault("labels", {})[common.WORKSPACE_LABEL] = ws
    body["metadata"].setdefault("resourceVersion", old["metadata"].get("resourceVersion"))
    return common.ok(await common.ctx(request).kube.replace(kube.NAMESPACES, body))


@routes.add(
    "PATCH", WS + "/namespaces/{namespace}", summary="Merge-patch a namespace of a workspace", body=OBJECT
)
async def patch_namespace(request: web.Request) -> web.Response:
    ws, name, _ = _namespace(request)
    patch = await common.json_body(request)
    if not isinstance(patch, dict) or not isinstance(patch.setdefault("metadata", {}), dict):
        raise APIError(400, "the body must be a JSON merge patch (an object)")
    if "labels" in patch["metadata"]:
        labels = patch["metadata"]["labels"]
        if not isinstance(labels, dict):
            raise APIError(400, "metadata.labels must be an object (the workspace label stays)")
        labels[common.WORKSPACE_LABEL] = ws
    patch["metadata"].pop("name", None)
    return common.ok(await common.ctx(request).kube.patch(kube.NAMESPACES, name, patch))


@routes.add(
    "DELETE", WS + "/namespaces/{namespace}", summary="Delete a namespace of a workspace", response=SUCCESS
)
async def delete_namespace(request: web.Request) -> web.Response:
    _, name, _ = _namespace(request)
    await common.ctx(request).kube.delete(kube.NAMESPACES, name)
    return common.success()


@routes.add(
    "GET",
    WS + "/devops",
    summary="A workspace's DevOps projects the caller may see",
    query=LIST_PARAMS,
    response=LIST,
)
async def list_devops(request: web.Request) -> web.Response:
    ws = common.name_param(request, "workspace", kube.WORKSPACETEMPLATES)
    user = common.caller(request)
    items = common.ctx(request).caches[kube.DEVOPSPROJECTS].list(labels={common.WORKSPACE_LABEL: ws})
    authz = common.ctx(request).authorizer
    if not authz.allows(user, verb="list", resource="devops", api_group="devops.kubesphere.io", workspace=ws):
        items = [
            p
            for p in items
            if _bound_in(request, user, str((p.get("status") or {}).get("adminNamespace") or "-"))
        ]
    return common.listing(request, items)


# -- /kapis/tenant.kubesphere.io/v1alpha3: what the 3.4 console calls for workspaces ---------------
#
# ``workspacetemplates`` CRUD and ``workspaces`` reads, answered as the v1alpha2 routes above (KubeSphere
# serves both versions from the same handlers).  The console checks whether a name is taken with
# ``GET /workspacetemplates/{ws}`` and the header ``x-check-exist``: a caller who may create
# workspaces learns ``{"exist": true}`` for a workspace they cannot see (never the object), so the
# form does not offer a name that a create would refuse with 409.

PREFIX3 = "/kapis/tenant.kubesphere.io/v1alpha3"
routes3 = Routes(PREFIX3, "Tenant v1alpha3")
WST = "/workspacetemplates/{workspace}"
CHECK_EXIST = "x-check-exist"


async def get_template_or_check(request: web.Request) -> web.Response:
    if request.headers.get(CHECK_EXIST):
        _template(request)  # 404 when there is none
        user = common.caller(request)
        if common.ctx(request).authorizer.allows(
            user, verb="create", resource="workspacetemplates", api_group="tenant.kubesphere.io"
        ):
            return common.ok({"exist": True})
    return common.ok(_visible_template(request)[1])


routes3.add(
    "GET", "/workspacetemplates", summary="Workspaces the caller may see", query=LIST_PARAMS, response=LIST
)(list_workspaces)
routes3.add("POST", "/workspacetemplates", summary="Create a workspace", body=OBJECT)(create_workspace)
routes3.add("GET", WST, summary="Get a workspace (or, with x-check-exist, whether the name is taken)")(
    get_template_or_check
)
routes3.add("PUT", WST, summary="Replace a workspace", body=OBJECT)(update_workspace)
routes3.add("PATCH", WST, summary="Patch a workspace (JSON patch, or merge patch)", body=ANY_PATCH)(
    patch_workspace
)
routes3.add("DELETE", WST, summary="Delete a workspace", query=DELETE_PARAMS, response=SUCCESS)(
    delete_workspace
)
routes3.add("GET", "/workspaces", summary="Workspaces the caller may see", query=LIST_PARAMS, response=LIST)(
    list_workspaces
)
routes3.add("GET", WS, summary="Get a workspace")(get_workspace)
