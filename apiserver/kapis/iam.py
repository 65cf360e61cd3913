"""/kapis/iam.kubesphere.io/v1alpha2 users: CRUD, the global role annotation, password, login records.

* ``iam.kubesphere.io/globalrole`` is an input on create and update (it makes
  the GlobalRoleBinding ``<user>-<role>``, labelled ``iam.kubesphere.io/user-ref``,
  replacing the user's other global role bindings) and a decoration on output;
  it is never stored on the User.
* ``spec.password`` is never output.  On create it must be 8-64 characters
  with a lower-case letter, an upper-case letter and a digit (or a bcrypt
  hash), else 422; it is stored as sent and the user controller hashes it.
* An update keeps the password.  Changing the global role or ``status.state``
  (Active/Disabled only) needs ``update users``; without it (a user editing
  themselves) only the profile changes: ``spec.email``, ``lang``,
  ``description``, ``displayName`` and two display annotations -- never
  groups, labels or other annotations.
* A password change checks ``currentPassword`` unless the caller may
  ``update users/password``.
"""

from __future__ import annotations

import re
from typing import Any

import bcrypt
from aiohttp import web

from apiserver import kube
from apiserver.errors import APIError, not_found
from apiserver.kapis import common
from apiserver.openapi import LIST, LIST_PARAMS, OBJECT, SUCCESS, Param, Routes

PREFIX = "/kapis/iam.kubesphere.io/v1alpha2"
GLOBALROLE_ANNOTATION = "iam.kubesphere.io/globalrole"
IAM = "iam.kubesphere.io"
_BCRYPT = re.compile(r"\$2[ayb]\$.{56}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
ACTIVE, DISABLED = "Active", "Disabled"

routes = Routes(PREFIX, "IAM: users")
USER_FILTERS = (Param("email", "Filter: exact email"), Param("globalrole", "Filter: global role name"))


def password_problem(password: object) -> str | None:
    """Why a password is not acceptable (the User CRD's rule), or None."""
    if not isinstance(password, str):
        return "must be a string"
    if _BCRYPT.fullmatch(password):
        return None
    if not 8 <= len(password) <= 64:
        return "must be 8 to 64 characters long"
    if not (
        re.search(r"[a-z]", password) and re.search(r"[A-Z]", password) and re.search(r"[0-9]", password)
    ):
        return "must contain a lower-case letter, an upper-case letter and a digit"
    return None


def invalid_password(name: str, why: str, *, field: str = "spec.password") -> APIError:
    return APIError(
        422, f'User.iam.kubesphere.io "{name}" is invalid: {field}: Invalid value: "<hidden>": {why}'
    )


#: What a user may change about themselves without ``update users``.
SELF_SERVICE_SPEC = ("email", "lang", "description", "displayName")
SELF_SERVICE_ANNOTATIONS = ("kubesphere.io/alias-name", "kubesphere.io/description")


def _self_service_meta(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    meta = common.thawed(old)
    annotations = meta.setdefault("annotations", {})
    for key in SELF_SERVICE_ANNOTATIONS:
        if key in (new.get("annotations") or {}):
            annotations[key] = new["annotations"][key]
    if "resourceVersion" in new:
        meta["resourceVersion"] = new["resourceVersion"]
    return meta


def _check_email(request: web.Request, name: str, email: object) -> None:
    if not isinstance(email, str) or not _EMAIL.fullmatch(email):
        raise APIError(422, f'User.iam.kubesphere.io "{name}" is invalid: spec.email: Invalid value: '
                            f"{email!r}: invalid email address")  # fmt: skip
    for other in common.ctx(request).caches[kube.USERS].list():
        if (other.get("spec") or {}).get("email") == email and other["metadata"]["name"] != name:
            raise APIError(409, f"user email: {email} already exists")


def global_role_of(request: web.Request, user: str) -> str:
    for binding in (
        common.ctx(request).caches[kube.GLOBALROLEBINDINGS].list(labels={common.USER_REF_LABEL: user})
    ):
        return str((binding.get("roleRef") or {}).get("name") or "")
    return ""


def present(request: web.Request, user: dict[str, Any], *, role: str | None = None) -> dict[str, Any]:
    """A user as the API shows it: no password, the global role as an annotation."""
    out = common.thawed(user)
    (out.get("spec") or {}).pop("password", None)
    role = global_role_of(request, out["metadata"]["name"]) if role is None else role
    if role:
        out["metadata"].setdefault("annotations", {})[GLOBALROLE_ANNOTATION] = role
    return out


async def bind_global_role(request: web.Request, user: str, role: str) -> None:
    """Make ``<user>-<role>`` the user's only GlobalRoleBinding."""
    ctx = common.ctx(request)
    if ctx.caches[kube.GLOBALROLES].get(role) is None:
        raise not_found("globalrole.iam.kubesphere.io", role)
    name = f"{user}-{role}"
    for old in ctx.caches[kube.GLOBALROLEBINDINGS].list(labels={common.USER_REF_LABEL: user}):
        if old["metadata"]["name"] != name:
            await _delete_quietly(ctx.kube, kube.GLOBALROLEBINDINGS, old["metadata"]["name"])
    binding = {
        "apiVersion": "iam.kubesphere.io/v1alpha2",
        "kind": "GlobalRoleBinding",
        "metadata": {"name": name, "labels": {common.USER_REF_LABEL: user}},
        "roleRef": {"apiGroup": IAM, "kind": "GlobalRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    try:
        await ctx.kube.create(kube.GLOBALROLEBINDINGS, binding)
    except kube.KubeError as exc:
        if exc.status != 409:
            raise


async def _delete_quietly(
    client: kube.KubeClient, res: kube.Resource, name: str, ns: str | None = None
) -> None:
    try:
        await client.delete(res, name, namespace=ns)
    except kube.KubeError as exc:
        if exc.status != 404:
            raise


def _user(request: web.Request, key: str = "user") -> dict[str, Any]:
    name = common.name_param(request, key, kube.USERS)
    user = common.ctx(request).caches[kube.USERS].get(name)
    if user is None:
        raise not_found("user.iam.kubesphere.io", name)
    return user


def _filters(request: web.Request) -> dict[str, Any]:
    return {
        "email": lambda o, v: str((o.get("spec") or {}).get("email") or "") == v,
        "globalrole": lambda o, v: global_role_of(request, o["metadata"]["name"]) == v,
    }


@routes.add("GET", "/users", summary="List users", query=LIST_PARAMS + USER_FILTERS, response=LIST)
async def list_users(request: web.Request) -> web.Response:
    users = common.ctx(request).caches[kube.USERS].list()
    return common.listing(
        request, users, filters=_filters(request), present=lambda u: present(request, dict(u))
    )


@routes.add("GET", "/users/{user}", summary="Get a user")
async def get_user(request: web.Request) -> web.Response:
    return common.ok(present(request, _user(request)))


@routes.add(
    "POST",
    "/users",
    summary="Create a user (annotation iam.kubesphere.io/globalrole binds a role)",
    body=OBJECT,
)
async def create_user(request: web.Request) -> web.Response:
    ctx = common.ctx(request)
    body = await common.object_body(request, kind="User")
    name = common.check_name(body)
    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise APIError(422, f'User.iam.kubesphere.io "{name}" is invalid: spec: Required value')
    _check_email(request, name, spec.get("email"))
    if "password" in spec and (why := password_problem(spec["password"])):
        raise invalid_password(name, why)
    role = body["metadata"].get("annotations", {}).pop(GLOBALROLE_ANNOTATION, "")
    if role and (not common.valid_name(role) or ctx.caches[kube.GLOBALROLES].get(role) is None):
        raise not_found("globalrole.iam.kubesphere.io", str(role))
    body.update(apiVersion="iam.kubesphere.io/v1alpha2", kind="User")
    created = await ctx.kube.create(kube.USERS, body)
    if role:
        await bind_global_role(request, name, role)
    return common.ok(present(request, created, role=role))


@routes.add("PUT", "/users/{user}", summary="Update a user (keeps the password)", body=OBJECT)
async def update_user(request: web.Request) -> web.Response:
    ctx = common.ctx(request)
    name = _user(request)["metadata"]["name"]
    sent = await common.object_body(request, kind="User")
    common.check_name(sent, url_name=name)
    manager = ctx.authorizer.allows(common.caller(request), verb="update", resource="users", api_group=IAM)
    role = sent["metadata"].get("annotations", {}).pop(GLOBALROLE_ANNOTATION, "")
    if role and role != global_role_of(request, name) and not manager:
        raise common.deny(request, verb="update", resource="users", api_group=IAM, name=name)
    if role and (not common.valid_name(role) or ctx.caches[kube.GLOBALROLES].get(role) is None):
        raise not_found("globalrole.iam.kubesphere.io", str(role))
    # Built on the stored object, not the cache: the password it keeps may have just been hashed.
    # Without a resourceVersion from the client, a concurrent write (a controller's) is retried.
    pinned = "resourceVersion" in sent["metadata"]
    for attempt in range(3):
        old = await ctx.kube.get(kube.USERS, name)
        body = _updated(request, old, common.thawed(sent), manager=manager)
        try:
            updated = await ctx.kube.replace(kube.USERS, body)
            break
        except kube.KubeError as exc:
            if exc.status != 409 or pinned or attempt == 2:
                raise
    if role:
        await bind_global_role(request, name, role)
    return common.ok(present(request, updated, role=role or None))


def _updated(
    request: web.Request, old: dict[str, Any], body: dict[str, Any], *, manager: bool
) -> dict[str, Any]:
    """The User to store: the password and what the caller may not change come from ``old``."""
    name = old["metadata"]["name"]
    body["metadata"]["name"] = name
    spec: dict[str, Any] = body["spec"] if isinstance(body.get("spec"), dict) else {}
    old_spec = old.get("spec") or {}
    if not manager:
        # Self-service: the profile fields only; labels, annotations, groups and the rest stay.
        body["metadata"] = _self_service_meta(old["metadata"], body["metadata"])
        spec = {**common.thawed(old_spec), **{k: spec[k] for k in SELF_SERVICE_SPEC if k in spec}}
    spec.pop("password", None)
    if "password" in old_spec:
        spec["password"] = old_spec["password"]
    email = spec.get("email")
    if email != old_spec.get("email"):
        _check_email(request, name, email)
    body["spec"] = spec
    status = common.thawed(old.get("status") or {})
    wanted = (body.get("status") or {}).get("state") if isinstance(body.get("status"), dict) else None
    if wanted in (ACTIVE, DISABLED) and wanted != status.get("state"):
        if not manager:
            raise common.deny(request, verb="update", resource="users", api_group=IAM, name=name)
        status["state"] = wanted
    body["status"] = status
    body.update(apiVersion="iam.kubesphere.io/v1alpha2", kind="User")
    body["metadata"].setdefault("resourceVersion", old["metadata"].get("resourceVersion"))
    return body


@routes.add("DELETE", "/users/{user}", summary="Delete a user", response=SUCCESS)
async def delete_user(request: web.Request) -> web.Response:
    name = common.name_param(request, "user", kube.USERS)
    await common.ctx(request).kube.delete(kube.USERS, name)
    return common.success()


PASSWORD_BODY = {
    "type": "object",
    "required": ["password"],
    "properties": {"currentPassword": {"type": "string"}, "password": {"type": "string"}},
}


@routes.add(
    "PUT", "/users/{user}/password", summary="Change a password", body=PASSWORD_BODY, response=SUCCESS
)
async def change_password(request: web.Request) -> web.Response:
    ctx = common.ctx(request)
    user = _user(request)
    name = user["metadata"]["name"]
    body = await common.json_body(request)
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be an object with currentPassword and password")
    password, current = body.get("password"), body.get("currentPassword", "")
    if not isinstance(current, str):
        raise APIError(400, "currentPassword must be a string")
    manager = ctx.authorizer.allows(
        common.caller(request), verb="update", resource="users", subresource="password", api_group=IAM
    )
    if not manager or current:
        stored = str((user.get("spec") or {}).get("password") or "")
        if not _verify(current, stored):
            raise APIError(400, "incorrect old password")
    if why := password_problem(password):
        raise invalid_password(name, why)
    await ctx.kube.patch(kube.USERS, name, {"spec": {"password": password}})
    return common.success()


def _verify(password: str, stored: str) -> bool:
    if not password or not stored:
        return False
    if _BCRYPT.fullmatch(stored):
        try:
            return bcrypt.checkpw(password.encode(), stored.encode())
        except ValueError:
            return False
    return password == stored  # not hashed by the controller yet


@routes.add(
    "GET", "/users/{user}/loginrecords", summary="A user's login records", query=LIST_PARAMS, response=LIST
)
async def login_records(request: web.Request) -> web.Response:
    name = _user(request)["metadata"]["name"]
    records = common.ctx(request).caches[kube.LOGINRECORDS].list(labels={common.USER_REF_LABEL: name})
    return common.listing(request, records)
