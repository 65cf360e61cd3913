"""Role bindings as objects, for subjects other than one member (a group's role in a workspace or namespace).

``POST /workspaces/{ws}/workspacerolebindings`` and ``POST /namespaces/{ns}/rolebindings``
take a list of bindings and answer the list of what was made (a JSON array, as KubeSphere).
Each must name a role of the scope (a WorkspaceRole labelled with the workspace; a Role of the
namespace) and at least one subject.  As KubeSphere names them, a binding without a name gets
``generateName: <first subject>-<role>-`` (the console sends no ``metadata``), and the label
``iam.kubesphere.io/group-ref`` (a Group) or ``iam.kubesphere.io/user-ref`` (a User) naming the
first subject, plus the workspace label; ``GET`` lists the scope's bindings and
``DELETE …/{name}`` removes one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from apiserver import kube
from apiserver.errors import APIError, not_found
from apiserver.kapis import common, iam
from apiserver.openapi import LIST, LIST_PARAMS, SUCCESS, Routes

routes = Routes(iam.PREFIX, "IAM: role bindings")
BINDINGS_BODY: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
GROUP_REF_LABEL = "iam.kubesphere.io/group-ref"


@dataclass(frozen=True)
class Kind:
    path: str
    bindings: kube.Resource
    roles: kube.Resource
    workspace: bool

    def scope(self, request: web.Request) -> tuple[str, str | None]:
        """(workspace, namespace) named by the URL."""
        if self.workspace:
            return common.name_param(request, "workspace", kube.WORKSPACETEMPLATES), None
        return "", common.name_param(request, "namespace", kube.NAMESPACES)


KINDS = (
    Kind(
        "/workspaces/{workspace}/workspacerolebindings", kube.WORKSPACEROLEBINDINGS, kube.WORKSPACEROLES, True
    ),
    Kind("/namespaces/{namespace}/rolebindings", kube.ROLEBINDINGS, kube.ROLES, False),
)


def _list(kind: Kind, request: web.Request, ws: str, ns: str | None) -> list[dict[str, Any]]:
    cache = common.ctx(request).caches[kind.bindings]
    return cache.list(labels={common.WORKSPACE_LABEL: ws}) if ws else cache.list(namespace=ns)


def _prepare(kind: Kind, request: web.Request, ws: str, ns: str | None, item: object) -> dict[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("metadata", {}), dict):
        raise APIError(400, f"each item must be a {kind.bindings.kind} object")
    binding = common.thawed(item)
    binding.setdefault("metadata", {})
    ref = binding.get("roleRef")
    subjects = binding.get("subjects")
    if not isinstance(ref, dict) or not isinstance(subjects, list) or not subjects:
        raise APIError(422, f"{kind.bindings.kind}: roleRef and subjects are required")
    first = subjects[0]
    if not isinstance(first, dict) or not common.valid_name(first.get("name")):
        raise APIError(422, f"{kind.bindings.kind}: subjects[0].name must be a valid name")
    meta = binding["metadata"]
    if meta.get("name"):
        common.check_name(binding)
    else:
        meta.pop("name", None)
        meta["generateName"] = f"{first['name']}-{ref.get('name')}-"
    role = str(ref.get("name") or "")
    found = (
        common.ctx(request).caches[kind.roles].get(role, namespace=ns) if common.valid_name(role) else None
    )
    if found is None or (ws and common.labels(found).get(common.WORKSPACE_LABEL) != ws):
        raise not_found(common.qualified(kind.roles), role)
    binding["roleRef"] = {"apiGroup": kind.roles.group, "kind": kind.roles.kind, "name": role}
    if not isinstance(meta.get("labels") or {}, dict):
        raise APIError(400, "metadata.labels must be an object")
    labels = dict(meta.get("labels") or {})
    if first.get("kind") == "Group":
        labels[GROUP_REF_LABEL] = str(first["name"])
    elif first.get("kind") == "User":
        labels[common.USER_REF_LABEL] = str(first["name"])
    if ws:
        labels[common.WORKSPACE_LABEL] = ws
    meta["labels"] = labels
    if ns:
        meta["namespace"] = ns
    binding.update(apiVersion=kind.bindings.api_version, kind=kind.bindings.kind)
    return binding


def _register(kind: Kind) -> None:
    async def list_bindings(request: web.Request) -> web.Response:
        ws, ns = kind.scope(request)
        return common.listing(request, _list(kind, request, ws, ns))

    async def create_bindings(request: web.Request) -> web.Response:
        ws, ns = kind.scope(request)
        body = await common.json_body(request)
        if not isinstance(body, list):
            raise APIError(400, f"the body must be a list of {kind.bindings.kind} objects")
        prepared = [_prepare(kind, request, ws, ns, item) for item in body]
        client = common.ctx(request).kube
        made = [await client.create(kind.bindings, b, namespace=ns) for b in prepared]
        return common.ok(made)

    async def delete_binding(request: web.Request) -> web.Response:
        ws, ns = kind.scope(request)
        name = common.name_param(request, "name", kind.bindings)
        obj = common.ctx(request).caches[kind.bindings].get(name, namespace=ns)
        if obj is None or (ws and common.labels(obj).get(common.WORKSPACE_LABEL) != ws):
            raise not_found(common.qualified(kind.bindings), name)
        await common.ctx(request).kube.delete(kind.bindings, name, namespace=ns)
        return common.success()

    routes.add("GET", kind.path, summary=f"List {kind.bindings.kind}s", query=LIST_PARAMS, response=LIST)(
        list_bindings
    )
    routes.add(
        "POST", kind.path, summary=f"Create {kind.bindings.kind}s", body=BINDINGS_BODY, response=BINDINGS_BODY
    )(create_bindings)
    routes.add("DELETE", kind.path + "/{name}", summary=f"Delete a {kind.bindings.kind}", response=SUCCESS)(
        delete_binding
    )


for _kind in KINDS:
    _register(_kind)
