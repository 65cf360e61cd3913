"""The /kapis route registry, and the OpenAPI 3 document and HTML page generated from it.

Handlers are declared once, with what the document needs (summary, query
parameters, body and response schemas); ``kapis.setup`` adds them to the
aiohttp router and serves the document, so the two cannot drift apart.
Routes the server owns elsewhere (``/oauth/token``) are described here by
hand.  The page at ``/docs`` is self-contained: a table of the operations and
the JSON document, no scripts or stylesheets from anywhere else.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Schema = dict[str, Any]

OBJECT: Schema = {"type": "object", "description": "A Kubernetes object", "additionalProperties": True}
LIST: Schema = {
    "type": "object",
    "required": ["items", "totalItems"],
    "properties": {"items": {"type": "array", "items": OBJECT}, "totalItems": {"type": "integer"}},
}
SUCCESS: Schema = {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}}
TEXT_ERROR = {
    "description": "Handler error: `<message>\\n` with the Kubernetes error code",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}
STATUS_ERROR = {
    "description": "Kubernetes Status (authentication, authorization)",
    "content": {"application/json": {"schema": OBJECT}},
}


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    type: str = "string"

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "required": False,
            "description": self.description,
            "schema": {"type": self.type},
        }


LIST_PARAMS = (
    Param("page", "Page number, from 1", "integer"),
    Param("limit", "Items per page (no limit: no paging)", "integer"),
    Param("sortBy", "creationTimestamp (default) or name"),
    Param("ascending", "Oldest / A first (default false)", "boolean"),
    Param("name", "Filter: name contains"),
    Param("labelSelector", "Kubernetes label selector"),
)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    query: tuple[Param, ...] = ()
    body: Schema | None = None
    response: Schema = field(default_factory=lambda: OBJECT)
    produces: str = "application/json"

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


class Routes:
    """Routes under one prefix, declared with a decorator per handler."""

    def __init__(self, prefix: str, tag: str) -> None:
        self.prefix = prefix
        self.tag = tag
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        query: Iterable[Param] = (),
        body: Schema | None = None,
        response: Schema = OBJECT,
        produces: str = "application/json",
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method=method,
                    path=self.prefix + path,
                    handler=handler,
                    summary=summary,
                    tag=self.tag,
                    query=tuple(query),
                    body=body,
                    response=response,
                    produces=produces,
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for route in self.routes:
            app.router.add_route(route.method, route.path, route.handler)


def _operation(route: Route) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in route.path_params
    ]
    params += [p.spec() for p in route.query]
    op: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": f"{route.method.lower()}:{route.path}",
        "parameters": params,
        "responses": {
            "200": {
                "description": "OK",
                "content": {
                    route.produces: {
                        "schema": route.response if route.produces.endswith("json") else {"type": "string"}
                    }
                },
            },
            "400": TEXT_ERROR,
            "401": STATUS_ERROR,
            "403": STATUS_ERROR,
            "404": TEXT_ERROR,
            "409": TEXT_ERROR,
            "415": TEXT_ERROR,
            "422": TEXT_ERROR,
        },
    }
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body}}}
    return op


OAUTH_PATHS: dict[str, Any] = {
    "/oauth/token": {
        "post": {
            "summary": "Issue tokens (password, refresh_token or code grant)",
            "tags": ["OAuth"],
            "operationId": "post:/oauth/token",
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["grant_type", "client_id", "client_secret"],
                            "properties": {
                                "grant_type": {
                                    "type": "string",
                                    "enum": ["password", "refresh_token", "code"],
                                },
                                "code": {"type": "string"},
                                "client_id": {"type": "string"},
                                "client_secret": {"type": "string"},
                                "username": {"type": "string"},
                                "password": {"type": "string"},
                                "refresh_token": {"type": "string"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "Tokens",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "access_token": {"type": "string"},
                                    "refresh_token": {"type": "string"},
                                    "token_type": {"type": "string"},
                                    "expires_in": {"type": "integer"},
                                },
                            }
                        }
                    },
                },
                "400": {"description": "invalid_grant / unsupported_grant_type"},
                "401": {"description": "invalid_client"},
                "415": {"description": "not a form body"},
                "429": {"description": "auth rate limit exceeded"},
            },
        }
    },
    "/oauth/logout": {
        "get": {
            "summary": "Revoke all of the caller's tokens",
            "tags": ["OAuth"],
            "operationId": "get:/oauth/logout",
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": SUCCESS}}}},
        }
    },
}


def _oauth_op(method: str, path: str, summary: str, **extra: Any) -> dict[str, Any]:
    op = {
        "summary": summary,
        "tags": ["OAuth"],
        "operationId": f"{method}:{path}",
        "responses": {
            "200": {"description": "OK"},
            "400": TEXT_ERROR,
            "401": {"description": "login_required"},
        },
    }
    return {method: {**op, **extra}}  # fmt: skip


_AUTHORIZE_QUERY = [
    {"name": n, "in": "query", "required": n in ("client_id", "response_type"), "schema": {"type": "string"}}
    for n in ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce")
]
_TOKEN_REVIEW = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "spec": {"type": "object", "properties": {"token": {"type": "string"}}},
    },
}
OAUTH_PATHS.update(
    {
        "/oauth/authorize": _oauth_op(
            "get", "/oauth/authorize", "Authorization endpoint (code or token) for a logged-in caller",
            parameters=_AUTHORIZE_QUERY,
        ),
        "/oauth/keys": _oauth_op("get", "/oauth/keys", "The JWKS that verifies ID tokens"),
        "/oauth/authenticate": _oauth_op(
            "post", "/oauth/authenticate", "TokenReview webhook for kube-apiserver",
            requestBody={"required": True, "content": {"application/json": {"schema": _TOKEN_REVIEW}}},
        ),
        "/oauth/userinfo": _oauth_op("get", "/oauth/userinfo", "The caller's OpenID claims"),
        "/oauth/.well-known/openid-configuration": _oauth_op(
            "get", "/oauth/.well-known/openid-configuration", "OpenID discovery document"
        ),
    }
)  # fmt: skip


def document(
    routes: Iterable[Route], *, title: str = "KubeSphere API", version: str = "v3"
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    paths.update(OAUTH_PATHS)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": version,
            "description": "ks-apiserver: the /kapis APIs. Authenticate with "
            "`Authorization: Bearer <token>` from /oauth/token, or HTTP Basic.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            }
        },
        "security": [{"bearer": []}, {"basic": []}, {}],
        "paths": dict(sorted(paths.items())),
    }


def page(doc: dict[str, Any]) -> str:
    """A self-contained HTML page: one table row per operation, then the document itself."""
    rows = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            params = ", ".join(p["name"] for p in op.get("parameters", []))
            rows.append(
                f"<tr><td class=m>{html.escape(method.upper())}</td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td><td>{html.escape(params)}</td></tr>"
            )
    body = json.dumps(doc, indent=2)
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{html.escape(doc['info']['title'])}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}td.m{font-weight:bold}"
        "pre{background:#f6f6f6;padding:1em;overflow:auto}</style></head><body>"
        f"<h1>{html.escape(doc['info']['title'])}</h1><p>{len(rows)} operations. "
        "The machine-readable document is at <a href=/openapi.json>/openapi.json</a>.</p>"
        "<table><tr><th>Method</th><th>Path</th><th>Summary</th><th>Parameters</th></tr>"
        + "".join(rows)
        + f"</table><h2>Document</h2><pre>{html.escape(body)}</pre></body></html>"
    )
