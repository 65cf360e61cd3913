"""The /kapis APIs (iam, tenant, resources, monitoring, kubeconfig, terminal, config, version) + OpenAPI.

``setup(app)`` adds every route of ``ALL`` to the router, and serves the
document generated from the same declarations at ``/openapi.json`` with a
browsable page at ``/docs``.
"""

from __future__ import annotations

import json

from aiohttp import web

from apiserver import openapi
from apiserver.kapis import (
    bindings,
    config,
    groups,
    iam,
    kubeconfig,
    members,
    monitoring,
    overview,
    permissions,
    resources,
    roles,
    tenant,
    terminal,
    version,
)

#: Every route group; the document lists exactly these (plus /oauth).
ALL = (
    iam.routes,
    roles.routes,
    members.routes,
    permissions.routes,
    groups.routes,
    bindings.routes,
    tenant.routes,
    tenant.routes3,
    resources.routes,
    overview.routes,
    monitoring.routes,
    kubeconfig.routes,
    terminal.routes,
    config.routes,
    version.routes,
)
DOCUMENT_PATH = "/openapi.json"
PAGE_PATH = "/docs"


def document() -> dict[str, object]:
    return openapi.document(route for group in ALL for route in group.routes)


def setup(app: web.Application) -> None:
    for group in ALL:
        if group is version.routes:
            version.install(app)
        elif group is monitoring.routes:
            monitoring.install(app)
        else:
            group.install(app)
    doc = document()
    body = json.dumps(doc).encode()
    page = openapi.page(doc)

    async def serve_document(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def serve_page(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get(DOCUMENT_PATH, serve_document)
    app.router.add_get(PAGE_PATH, serve_page)
