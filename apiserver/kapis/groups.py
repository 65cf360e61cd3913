"""A workspace's user groups and group bindings (/kapis/iam.kubesphere.io/v1alpha2/workspaces/{ws}/...).

A Group is named by the server from its ``generateName`` (required, and unique
among the workspace's groups: the console shows it as the group's name) and
labelled ``kubesphere.io/workspace``.  ``POST groupbindings`` takes
``[{"userName", "groupName"}]`` and makes one GroupBinding per pair, labelled
with the user, the group and the workspace; the groupbinding controller keeps
``user.spec.groups`` in step, which is what RBAC reads for Group subjects.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver import kube
from apiserver.errors import APIError, not_found
from apiserver.kapis import common, iam
from apiserver.openapi import LIST, LIST_PARAMS, OBJECT, SUCCESS, Routes

routes = Routes(iam.PREFIX, "IAM: groups")
GROUPS = "/workspaces/{workspace}/groups"
BINDINGS = "/workspaces/{workspace}/groupbindings"
GROUP_REF_LABEL = "iam.kubesphere.io/group-ref"
BINDINGS_BODY: dict[str, Any] = {
    "type": "array",
    "items": {"type": "object", "required": ["userName", "groupName"],
              "properties": {"userName": {"type": "string"}, "groupName": {"type": "string"}}},
}  # fmt: skip
BINDINGS_ARRAY: dict[str, Any] = {"type": "array", "items": {"type": "object", "additionalProperties": True}}


def _ws(request: web.Request) -> str:
    return common.name_param(request, "workspace", kube.WORKSPACETEMPLATES)


def _in_workspace(request: web.Request, res: kube.Resource, key: str) -> tuple[str, dict[str, Any]]:
    ws = _ws(request)
    name = common.name_param(request, key, res)
    obj = common.ctx(request).caches[res].get(name)
    if obj is None or common.labels(obj).get(common.WORKSPACE_LABEL) != ws:
        raise not_found(common.qualified(res), name)
    return name, obj


@routes.add("GET", GROUPS, summary="A workspace's groups", query=LIST_PARAMS, response=LIST)
async def list_groups(request: web.Request) -> web.Response:
    ws = _ws(request)
    return common.listing(
        request, common.ctx(request).caches[kube.GROUPS].list(labels={common.WORKSPACE_LABEL: ws})
    )


@routes.add(
    "POST", GROUPS, summary="Create a group (generateName required, unique in the workspace)", body=OBJECT
)
async def create_group(request: web.Request) -> web.Response:
    ws = _ws(request)
    body = await common.object_body(request, kind="Group")
    generate = body["metadata"].get("generateName")
    if not isinstance(generate, str) or not generate:
        raise APIError(422, "Group.iam.kubesphere.io is invalid: metadata.generateName: Required value")
    taken = common.ctx(request).caches[kube.GROUPS].list(labels={common.WORKSPACE_LABEL: ws})
    if any(g["metadata"].get("generateName") == generate for g in taken):
        raise APIError(409, f'group "{generate}" already exists in workspace "{ws}"')
    body["metadata"].pop("name", None)
    body["metadata"].setdefault("labels", {})[common.WORKSPACE_LABEL] = ws
    body.update(apiVersion=kube.GROUPS.api_version, kind="Group")
    return common.ok(await common.ctx(request).kube.create(kube.GROUPS, body))


@routes.add("GET", GROUPS + "/{group}", summary="Get a group")
async def get_group(request: web.Request) -> web.Response:
    return common.ok(_in_workspace(request, kube.GROUPS, "group")[1])


@routes.add("DELETE", GROUPS + "/{group}", summary="Delete a group and its bindings", response=SUCCESS)
async def delete_group(request: web.Request) -> web.Response:
    name, _ = _in_workspace(request, kube.GROUPS, "group")
    ctx = common.ctx(request)
    for binding in ctx.caches[kube.GROUPBINDINGS].list(labels={GROUP_REF_LABEL: name}):
        await _delete(ctx.kube, binding["metadata"]["name"])
    await ctx.kube.delete(kube.GROUPS, name)
    return common.success()


@routes.add("GET", BINDINGS, summary="A workspace's group bindings", query=LIST_PARAMS, response=LIST)
async def list_bindings(request: web.Request) -> web.Response:
    ws = _ws(request)
    cache = common.ctx(request).caches[kube.GROUPBINDINGS]
    return common.listing(request, cache.list(labels={common.WORKSPACE_LABEL: ws}))


@routes.add("POST", BINDINGS, summary="Add users to groups", body=BINDINGS_BODY, response=BINDINGS_ARRAY)
async def create_bindings(request: web.Request) -> web.Response:
    ws = _ws(request)
    ctx = common.ctx(request)
    body = await common.json_body(request)
    if not isinstance(body, list):
        raise APIError(400, 'the body must be a list of {"userName", "groupName"}')
    pairs = []
    for item in body:
        if not isinstance(item, dict):
            raise APIError(400, 'each item must be {"userName": "...", "groupName": "..."}')
        user, group = item.get("userName"), item.get("groupName")
        if not common.valid_name(user) or ctx.caches[kube.USERS].get(str(user)) is None:
            raise not_found("user.iam.kubesphere.io", str(user))
        found = ctx.caches[kube.GROUPS].get(str(group)) if common.valid_name(group) else None
        if found is None or common.labels(found).get(common.WORKSPACE_LABEL) != ws:
            raise not_found("group.iam.kubesphere.io", str(group))
        pairs.append((str(user), str(group)))
    made = []
    for user, group in pairs:
        binding = {
            "apiVersion": kube.GROUPBINDINGS.api_version, "kind": "GroupBinding",
            "metadata": {"generateName": f"{group}-{user}-", "labels": {
                common.USER_REF_LABEL: user, GROUP_REF_LABEL: group, common.WORKSPACE_LABEL: ws}},
            "groupRef": {"apiGroup": "iam.kubesphere.io", "kind": "Group", "name": group},
            "users": [user],
        }  # fmt: skip
        made.append(await ctx.kube.create(kube.GROUPBINDINGS, binding))
    return common.ok(made)  # an array, as KubeSphere answers


@routes.add("DELETE", BINDINGS + "/{binding}", summary="Remove a group binding", response=SUCCESS)
async def delete_binding(request: web.Request) -> web.Response:
    name, _ = _in_workspace(request, kube.GROUPBINDINGS, "binding")
    await _delete(common.ctx(request).kube, name)
    return common.success()


async def _delete(client: kube.KubeClient, name: str) -> None:
    try:
        await client.delete(kube.GROUPBINDINGS, name)
    except kube.KubeError as exc:
        if exc.status != 404:
            raise
