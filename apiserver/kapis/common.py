"""What every /kapis handler needs: the caller, the context, bodies, names, and KubeSphere's answers.

Reads come from ``ctx.caches`` (objects there are shared: copy before
changing), writes go through ``ctx.kube``.  Lists answer
``{"items", "totalItems"}``, deletes ``{"message": "success"}``, errors are
``APIError`` (text/plain ``<message>\\n`` with the Kubernetes code).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from apiserver import query
from apiserver.context import CONTEXT, INFO_KEY, USER_KEY, Context
from apiserver.errors import APIError, forbidden, not_found
from apiserver.identity import UserInfo
from apiserver.kube import Resource
from apiserver.requestinfo import RequestInfo

WORKSPACE_LABEL = "kubesphere.io/workspace"
USER_REF_LABEL = "iam.kubesphere.io/user-ref"
CREATOR_ANNOTATION = "kubesphere.io/creator"
#: A name that can be one path segment of a Kubernetes URL (``system:auth-delegator`` included).
_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._:@-]{0,251}[A-Za-z0-9])?")


def ctx(request: web.Request) -> Context:
    return request.app[CONTEXT]


def caller(request: web.Request) -> UserInfo:
    user: UserInfo = request[USER_KEY]
    return user


def info(request: web.Request) -> RequestInfo:
    value: RequestInfo = request[INFO_KEY]
    return value


def qualified(res: Resource) -> str:
    """``user.iam.kubesphere.io`` as Kubernetes spells a kind in its errors."""
    singular = res.kind.lower()
    return f"{singular}.{res.group}" if res.group else singular


def name_param(request: web.Request, key: str, res: Resource) -> str:
    """A path parameter that must be a valid object name; anything else cannot exist (404)."""
    value = request.match_info[key]
    if not _NAME.fullmatch(value):
        raise not_found(qualified(res), value)
    return value


def valid_name(value: object) -> bool:
    return isinstance(value, str) and bool(_NAME.fullmatch(value))


async def json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc}") from exc


async def object_body(request: web.Request, *, kind: str) -> dict[str, Any]:
    """A JSON object body with a ``metadata`` mapping (created if absent)."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise APIError(400, f"the request body must be a {kind} object")
    meta = body.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise APIError(400, "metadata must be an object")
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            meta.pop(key, None)
        elif not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise APIError(400, f"metadata.{key} must map strings to strings")
    return body


def check_name(body: Mapping[str, Any], *, url_name: str | None = None) -> str:
    name = body["metadata"].get("name")
    if url_name is not None and name not in (None, "", url_name):
        raise APIError(
            400, f"the name of the object ({name}) does not match the name on the URL ({url_name})"
        )
    name = name or url_name
    if not valid_name(name):
        raise APIError(422, f"metadata.name: Invalid value: {json.dumps(name)}: must be a valid object name")
    return str(name)


def check_name_or_generate(body: Mapping[str, Any]) -> None:
    """A name, or a ``generateName`` prefix kube-apiserver completes (as the console sends for workspaces)."""
    meta = body["metadata"]
    prefix = meta.get("generateName")
    if meta.get("name") or prefix is None:
        check_name(body)
        return
    if not isinstance(prefix, str) or not valid_name(prefix.rstrip("-") or "-") or len(prefix) > 58:
        raise APIError(
            422, f"metadata.generateName: Invalid value: {json.dumps(prefix)}: must be a valid name prefix"
        )


def labels(obj: Mapping[str, Any] | None) -> dict[str, str]:
    value = ((obj or {}).get("metadata") or {}).get("labels")
    return dict(value) if isinstance(value, dict) else {}


def annotations_of(obj: Mapping[str, Any] | None) -> dict[str, str]:
    value = ((obj or {}).get("metadata") or {}).get("annotations")
    return dict(value) if isinstance(value, dict) else {}


def thawed(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A private copy of a cached object."""
    return copy.deepcopy(dict(obj))


def ok(data: Any) -> web.Response:
    return web.json_response(data)


def success() -> web.Response:
    return web.json_response({"message": "success"})


def listing(
    request: web.Request,
    items: Sequence[Mapping[str, Any]],
    *,
    filters: Mapping[str, query.Filter] | None = None,
    present: Callable[[Mapping[str, Any]], Any] | None = None,
) -> web.Response:
    """The KubeSphere list body; ``present`` shapes only the objects on the page (no copies of the rest)."""
    page, total = query.run(items, query.Query.parse(request.query), filters=filters)
    shown = [present(o) for o in page] if present is not None else list(page)
    return web.json_response({"items": shown, "totalItems": total})


def deny(request: web.Request, *, verb: str, resource: str, api_group: str, name: str = "") -> APIError:
    """A 403 Status in Kubernetes' words, for checks a handler makes itself."""
    denied = RequestInfo(
        path=request.path,
        verb=verb,
        is_resource_request=True,
        api_group=api_group,
        resource=resource,
        name=name,
    )
    return forbidden(ctx(request).authorizer.forbidden_message(caller(request), denied))
