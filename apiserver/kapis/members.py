"""Members of a workspace, namespace, DevOps project or the cluster: users and their one role there.

Body ``[{"username", "roleRef"}]``.  A member is a User named as a subject of a
binding in the scope; adding one creates the binding ``<user>-<role>``
(labelled ``iam.kubesphere.io/user-ref``, and ``kubesphere.io/workspace`` for
a workspace) and removes the user's other bindings there, so a user holds at
most one role per scope.  Listed users carry the role as an annotation
(``iam.kubesphere.io/workspacerole``, ``…/role``, ``…/clusterrole``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from apiserver import kube
from apiserver.errors import APIError, not_found
from apiserver.kapis import common, iam
from apiserver.kapis.roles import Scope
from apiserver.openapi import LIST, LIST_PARAMS, OBJECT, SUCCESS, Routes

routes = Routes(iam.PREFIX, "IAM: members")
RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Members:
    path: str
    bindings: kube.Resource
    roles: Scope
    annotation: str
    role_group: str

    @property
    def role_kind(self) -> str:
        return self.roles.res.kind


KINDS = (
    Members(
        "/workspaces/{workspace}/workspacemembers",
        kube.WORKSPACEROLEBINDINGS,
        Scope(kube.WORKSPACEROLES, "", workspace=True),
        "iam.kubesphere.io/workspacerole",
        iam.IAM,
    ),
    Members(
        "/namespaces/{namespace}/members",
        kube.ROLEBINDINGS,
        Scope(kube.ROLES, "", namespace="namespace"),
        "iam.kubesphere.io/role",
        RBAC,
    ),
    Members(
        "/devops/{devops}/members",
        kube.ROLEBINDINGS,
        Scope(kube.ROLES, "", namespace="devops"),
        "iam.kubesphere.io/role",
        RBAC,
    ),
    Members(
        "/clustermembers",
        kube.CLUSTERROLEBINDINGS,
        Scope(kube.CLUSTERROLES, ""),
        "iam.kubesphere.io/clusterrole",
        RBAC,
    ),
)


def _bindings(kind: Members, request: web.Request, ns: str | None) -> list[dict[str, Any]]:
    cache = common.ctx(request).caches[kind.bindings]
    if kind.roles.workspace:
        return cache.list(labels={common.WORKSPACE_LABEL: kind.roles.ws(request)})
    return cache.list(namespace=ns)


def _roles_by_user(kind: Members, request: web.Request, ns: str | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for binding in _bindings(kind, request, ns):
        role = str((binding.get("roleRef") or {}).get("name") or "")
        for subject in binding.get("subjects") or []:
            if isinstance(subject, dict) and subject.get("kind") == "User":
                found.setdefault(str(subject.get("name")), role)
    return found


def _member(kind: Members, request: web.Request, user: dict[str, Any], role: str) -> dict[str, Any]:
    out = iam.present(request, user)
    out["metadata"].setdefault("annotations", {})[kind.annotation] = role
    return out


async def _bind(kind: Members, request: web.Request, ns: str | None, item: object) -> dict[str, str]:
    ctx = common.ctx(request)
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("username"), str)
        or not isinstance(item.get("roleRef"), str)
    ):
        raise APIError(400, 'each member must be {"username": "...", "roleRef": "..."}')
    username, role = item["username"], item["roleRef"]
    if not common.valid_name(username) or ctx.caches[kube.USERS].get(username) is None:
        raise not_found("user.iam.kubesphere.io", username)
    ws = kind.roles.ws(request)
    role_obj = ctx.caches[kind.roles.res].get(role, namespace=ns) if common.valid_name(role) else None
    if role_obj is None or (ws and common.labels(role_obj).get(common.WORKSPACE_LABEL) != ws):
        raise not_found(common.qualified(kind.roles.res), role)
    name = f"{username}-{role}"
    for old in _bindings(kind, request, ns):
        if common.labels(old).get(common.USER_REF_LABEL) == username and old["metadata"]["name"] != name:
            await _delete(ctx.kube, kind.bindings, old["metadata"]["name"], ns)
    labels = {common.USER_REF_LABEL: username}
    if ws:
        labels[common.WORKSPACE_LABEL] = ws
    binding = {
        "apiVersion": kind.bindings.api_version,
        "kind": kind.bindings.kind,
        "metadata": {"name": name, "labels": labels, **({"namespace": ns} if ns else {})},
        "roleRef": {"apiGroup": kind.role_group, "kind": kind.role_kind, "name": role},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": username}],
    }
    try:
        await ctx.kube.create(kind.bindings, binding, namespace=ns)
    except kube.KubeError as exc:
        if exc.status != 409:
            raise
        existing = await ctx.kube.get(kind.bindings, name, namespace=ns)
        if common.labels(existing).get(common.WORKSPACE_LABEL, "") != ws or (
            (existing.get("roleRef") or {}).get("name") != role
        ):
            raise APIError(
                409, f'{common.qualified(kind.bindings)} "{name}" already exists for another scope'
            ) from None
    return {"username": username, "roleRef": role}


async def _delete(client: kube.KubeClient, res: kube.Resource, name: str, ns: str | None) -> None:
    try:
        await client.delete(res, name, namespace=ns)
    except kube.KubeError as exc:
        if exc.status != 404:
            raise


MEMBERS_BODY: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["username", "roleRef"],
        "properties": {"username": {"type": "string"}, "roleRef": {"type": "string"}},
    },
}
MEMBER_BODY: dict[str, Any] = MEMBERS_BODY["items"]


def _register(kind: Members) -> None:
    one = kind.path + "/{member}"

    async def list_members(request: web.Request) -> web.Response:
        ns = kind.roles.ns(request)
        roles = _roles_by_user(kind, request, ns)
        users = common.ctx(request).caches[kube.USERS]
        found = [(users.get(u), r) for u, r in roles.items()]
        return common.listing(request, [_member(kind, request, u, r) for u, r in found if u is not None])

    async def get_member(request: web.Request) -> web.Response:
        ns = kind.roles.ns(request)
        name = common.name_param(request, "member", kube.USERS)
        role = _roles_by_user(kind, request, ns).get(name)
        user = common.ctx(request).caches[kube.USERS].get(name)
        if role is None or user is None:
            raise not_found("member", name)
        return common.ok(_member(kind, request, user, role))

    async def add_members(request: web.Request) -> web.Response:
        ns = kind.roles.ns(request)
        body = await common.json_body(request)
        if not isinstance(body, list):
            raise APIError(400, 'the body must be a list of {"username", "roleRef"}')
        return common.ok([await _bind(kind, request, ns, item) for item in body])

    async def update_member(request: web.Request) -> web.Response:
        ns = kind.roles.ns(request)
        name = common.name_param(request, "member", kube.USERS)
        body = await common.json_body(request)
        if isinstance(body, dict) and body.get("username", name) != name:
            raise APIError(400, f"the username ({body.get('username')}) does not match the URL ({name})")
        if isinstance(body, dict):
            body = {**body, "username": name}
        return common.ok(await _bind(kind, request, ns, body))

    async def remove_member(request: web.Request) -> web.Response:
        ns = kind.roles.ns(request)
        name = common.name_param(request, "member", kube.USERS)
        client = common.ctx(request).kube
        for binding in _bindings(kind, request, ns):
            if common.labels(binding).get(common.USER_REF_LABEL) == name:
                await _delete(client, kind.bindings, binding["metadata"]["name"], ns)
        return common.success()

    routes.add("GET", kind.path, summary="List members", query=LIST_PARAMS, response=LIST)(list_members)
    routes.add("POST", kind.path, summary="Add members", body=MEMBERS_BODY, response=MEMBERS_BODY)(
        add_members
    )
    routes.add("GET", one, summary="Get a member", response=OBJECT)(get_member)
    routes.add("PUT", one, summary="Change a member's role", body=MEMBER_BODY, response=MEMBER_BODY)(
        update_member
    )
    routes.add("DELETE", one, summary="Remove a member", response=SUCCESS)(remove_member)


for _kind in KINDS:
    _register(_kind)
