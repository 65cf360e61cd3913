"""Reviews a caller asks about itself, answered here rather than by kube-apiserver.

``kubectl auth can-i`` (SelfSubjectAccessReview), ``kubectl auth can-i --list``
(SelfSubjectRulesReview) and ``kubectl auth whoami`` (SelfSubjectReview) would,
proxied with this server's credentials, describe this server's own account.
They are answered from the caller's identity and KubeSphere's authorizer
instead: the same decision the caller's request would get here.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from apiserver.context import CONTEXT, USER_KEY
from apiserver.errors import APIError
from apiserver.identity import UserInfo
from apiserver.requestinfo import RequestInfo, resource_scope

ACCESS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
RULES = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
WHOAMI = (
    "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    "/apis/authentication.k8s.io/v1beta1/selfsubjectreviews",
)


def handles(request: web.Request) -> bool:
    return request.method == "POST" and (request.path in (ACCESS, RULES) or request.path in WHOAMI)


async def answer(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        if raw.startswith(PROTOBUF_MAGIC):
            review = from_protobuf(raw, path=request.path)
        else:
            review = json.loads(raw or b"{}")
    except ValueError:
        raise APIError(
            400, "the request body is neither JSON nor a Kubernetes protobuf", as_status=True
        ) from None
    if not isinstance(review, dict):
        raise APIError(400, "the request body is not an object", as_status=True)
    user: UserInfo = request[USER_KEY]
    spec: dict[str, Any] = _object(review.get("spec"))
    if request.path == ACCESS:
        status = access(request, user, spec)
    elif request.path == RULES:
        status = rules(request, user, str(spec.get("namespace") or ""))
    else:
        status = {"userInfo": _user_info(user)}
    group_version = request.path.split("/")[2:4]
    kind = {ACCESS: "SelfSubjectAccessReview", RULES: "SelfSubjectRulesReview"}.get(
        request.path, "SelfSubjectReview"
    )
    body = {
        "kind": kind,
        "apiVersion": "/".join(group_version),
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }
    return web.json_response(body, status=201)


PROTOBUF_MAGIC = b"k8s\x00"
#: Field numbers of the review specs in Kubernetes' protobuf schema (generated.proto).
_RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource",
                        7: "name"}  # fmt: skip
_NON_RESOURCE_ATTRIBUTES = {1: "path", 2: "verb"}


def _fields(buf: bytes) -> dict[int, list[bytes]]:
    """The length-delimited fields of one protobuf message by number (other wire types skipped)."""
    found: dict[int, list[bytes]] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            if i >= len(buf) or shift > 63:
                raise ValueError("truncated varint")
            byte = buf[i]
            i += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    while i < len(buf):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            varint()
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            size = varint()
            if i + size > len(buf):
                raise ValueError("truncated field")
            found.setdefault(number, []).append(buf[i : i + size])
            i += size
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return found


def _strings(buf: bytes, names: dict[int, str]) -> dict[str, str]:
    fields = _fields(buf)
    return {name: fields[n][-1].decode() for n, name in names.items() if n in fields}


def from_protobuf(raw: bytes, *, path: str) -> dict[str, Any]:
    """The review's spec from kubectl's protobuf body (``k8s\\0`` + runtime.Unknown wrapping the object)."""
    envelope = _fields(raw[len(PROTOBUF_MAGIC) :])
    obj = _fields((envelope.get(2) or [b""])[-1])
    spec = _fields((obj.get(2) or [b""])[-1]) if path != WHOAMI[0] and path != WHOAMI[1] else {}
    out: dict[str, Any] = {}
    try:
        if path == RULES and 1 in spec:
            out["namespace"] = spec[1][-1].decode()
        elif path == ACCESS:
            if 1 in spec:
                out["resourceAttributes"] = _strings(spec[1][-1], _RESOURCE_ATTRIBUTES)
            if 2 in spec:
                out["nonResourceAttributes"] = _strings(spec[2][-1], _NON_RESOURCE_ATTRIBUTES)
    except UnicodeDecodeError as exc:
        raise ValueError(str(exc)) from exc
    return {"spec": out}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _user_info(user: UserInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    if user.extra:
        info["extra"] = {k: list(v) for k, v in user.extra.items()}
    return info


def access(request: web.Request, user: UserInfo, spec: dict[str, Any]) -> dict[str, Any]:
    ctx = request.app[CONTEXT]
    attrs = spec.get("resourceAttributes")
    if isinstance(attrs, dict):
        namespace = str(attrs.get("namespace") or "")
        group = str(attrs.get("group") or "")
        resource = str(attrs.get("resource") or "")
        info = RequestInfo(
            path="", verb=str(attrs.get("verb") or ""), is_resource_request=True,
            api_prefix="apis" if group else "api", api_group=group,
            api_version=str(attrs.get("version") or ""),
            namespace=namespace, resource=resource, subresource=str(attrs.get("subresource") or ""),
            name=str(attrs.get("name") or ""),
            resource_scope=resource_scope(api_group=group, resource=resource, namespace=namespace, devops="",
                                          workspace=""),
        )  # fmt: skip
    else:
        plain = _object(spec.get("nonResourceAttributes"))
        info = RequestInfo(
            path=str(plain.get("path") or "/"),
            verb=str(plain.get("verb") or "get"),
            is_resource_request=False,
        )
    decision = ctx.authorizer.authorize(user, info)
    allowed = decision.allowed and not decision.deferred
    status: dict[str, Any] = {"allowed": allowed}
    if allowed:
        status["reason"] = f"allowed by {decision.reason}"
    return status


def rules(request: web.Request, user: UserInfo, namespace: str) -> dict[str, Any]:
    ctx = request.app[CONTEXT]
    resource_rules, non_resource_rules = ctx.authorizer.rules_for(user, namespace=namespace)
    return {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": False}
