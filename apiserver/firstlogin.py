"""The first-login path: a user confirms a new password and clears their own init mark.

The console sends, for a user created with ``iam.kubesphere.io/uninitialized: "true"``,
``PATCH /apis/iam.kubesphere.io/v1alpha2/users/<self>`` as a JSON patch that removes the mark and
(unless the user skips) replaces ``/spec/password``.  A user may not otherwise write their own User
through the proxy (they could rewrite their groups or state), so when the authorizer refuses that
request it comes here, and only this is accepted:

* the caller is the user named in the path, and the body is a JSON patch whose operations are
  ``remove /metadata/annotations/iam.kubesphere.io~1uninitialized`` and ``replace`` (or ``add``)
  ``/spec/password``, nothing else;
* a password change must clear the mark in the same patch, the stored User must still carry it, and
  the caller must have proved the current password: a bearer token from a password login of the
  still uninitialized account (its ``extra.uninitialized`` claim) or Basic credentials.  After that
  the mark is gone, and a later change goes through ``PUT /kapis/…/users/<self>/password`` with the
  current password;
* the new password follows the User rule (422 otherwise).

Anything else keeps the authorizer's 403.  The patch is applied with the server's credentials, a
password change guarded by a ``test`` of the mark; the answer is the User without its password.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from apiserver import kube
from apiserver.authn import UNINITIALIZED_ANNOTATION
from apiserver.context import CONTEXT, INFO_KEY, USER_KEY
from apiserver.errors import APIError
from apiserver.identity import UserInfo
from apiserver.kapis.iam import invalid_password, password_problem

MARK_PATH = "/metadata/annotations/" + UNINITIALIZED_ANNOTATION.replace("~", "~0").replace("/", "~1")
PASSWORD_PATH = "/spec/password"
_PATH = re.compile(r"/apis/iam\.kubesphere\.io/v1alpha2/users/([^/]+)")
#: Set on a request the authorizer refused that may still be this path (the handler decides).
CANDIDATE = "first_login_candidate"


def candidate(request: web.Request, user: UserInfo) -> bool:
    """Whether a refused request is a user's PATCH of their own User through the proxy."""
    found = _PATH.fullmatch(request.path)
    return request.method == "PATCH" and not user.anonymous and found is not None and found[1] == user.name


def _refuse(request: web.Request, why: str) -> APIError:
    ctx = request.app[CONTEXT]
    denied = ctx.authorizer.forbidden_message(request[USER_KEY], request[INFO_KEY])
    return APIError(403, f"{denied}: {why}", as_status=True)


def _proved_password(request: web.Request, user: UserInfo) -> bool:
    if "true" in user.extra.get("uninitialized", ()):
        return True
    scheme = request.headers.get("Authorization", "").strip().partition(" ")[0]
    return scheme.lower() == "basic"


async def handle(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    user: UserInfo = request[USER_KEY]
    if request.content_type != "application/json-patch+json":
        raise _refuse(request, "only a JSON patch of the password and the init mark is allowed")
    try:
        ops = json.loads(await request.read() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise APIError(400, "the request body is not valid JSON", as_status=True) from None
    if not isinstance(ops, list) or not ops or not all(isinstance(op, dict) for op in ops):
        raise _refuse(request, "only a JSON patch of the password and the init mark is allowed")
    clears = any(op == {"op": "remove", "path": MARK_PATH} for op in ops)
    passwords = [op for op in ops if op.get("op") in ("replace", "add") and op.get("path") == PASSWORD_PATH]
    if len(passwords) + (1 if clears else 0) != len(ops) or len(passwords) > 1:
        raise _refuse(request, "a user may change only their password and clear their own init mark")
    stored = await ctx.kube.get(kube.USERS, user.name)
    meta = stored["metadata"]
    if passwords:
        marked = (meta.get("annotations") or {}).get(UNINITIALIZED_ANNOTATION) == "true"
        if not (clears and marked and _proved_password(request, user)):
            raise _refuse(
                request,
                "change the password with PUT /kapis/iam.kubesphere.io/v1alpha2/users/"
                f"{user.name}/password and the current password",
            )
        if why := password_problem(passwords[0].get("value")):
            raise invalid_password(user.name, why)
    # The mark is checked again where the patch applies (another writer may have cleared it meanwhile).
    guarded = [{"op": "test", "path": MARK_PATH, "value": "true"}, *ops] if passwords else ops
    result: dict[str, Any] = await ctx.kube.patch(kube.USERS, user.name, guarded, patch_type="json")
    (result.get("spec") or {}).pop("password", None)
    return web.json_response(result)
