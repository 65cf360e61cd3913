"""Requests the server forwards: ``/api`` and ``/apis`` to kube-apiserver, and gateway routes.

Kubernetes API calls arrive here already authenticated and authorized by
KubeSphere's own rules; they go on with the server's credentials (the
caller's ``Authorization``, ``Impersonate-*`` and ``X-Remote-*`` headers are dropped), and
the answer streams back as it arrives, so watches work.  Upgrade requests
(websocket watches, exec, attach, port-forward) are spliced by
:mod:`apiserver.upgrade`.

Gateway routes send a path prefix to a component's backend (DevOps API,
Jenkins, notification...) from ``gateway.routes`` in kubesphere.yaml
(``{prefix, backend, stripPrefix}``), plus defaults when ``devops`` is
configured.  These backends do their own authentication, so the caller's
headers go through and the server's Kubernetes credentials never do.  A backend
that is down answers 502 quickly rather than hanging.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from apiserver import upgrade
from apiserver.errors import APIError
from apiserver.kube import KubeUnavailable
from kubesphere.config import parse_duration

if TYPE_CHECKING:
    from apiserver.context import Context
    from kubesphere.config import Config

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Host", "Content-Length",
    )
)  # fmt: skip
#: Headers that would change who kube-apiserver thinks is calling: never sent with our credentials.
IDENTITY = ("impersonate-", "x-remote-")
#: Answers up to this size are read whole and sent with a Content-Length; larger ones stream.
BUFFER_LIMIT = 1 << 20


@dataclass(frozen=True)
class Route:
    prefix: str
    backend: str
    strip_prefix: bool = False

    def matches(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix.rstrip("/") + "/")

    def target(self, path_qs: str) -> str:
        rest = path_qs[len(self.prefix.rstrip("/")) :] if self.strip_prefix else path_qs
        if not rest.startswith("/"):
            rest = "/" + rest
        return self.backend.rstrip("/") + rest


def gateway(config: Config) -> Gateway:
    """The Gateway that ``gateway:`` and ``devops:`` describe; ``gateway.responseTimeout`` defaults to 60s."""
    raw = config.section("gateway").get("responseTimeout", 60)
    timeout = parse_duration(raw, key="gateway.responseTimeout")
    return Gateway(gateway_routes(config), response_timeout=timeout)


def gateway_routes(config: Config) -> tuple[Route, ...]:
    """Routes from ``gateway.routes``, then the DevOps defaults (explicit routes win)."""
    routes: list[Route] = []
    for item in config.section("gateway").get("routes") or []:
        if isinstance(item, dict) and item.get("prefix") and item.get("backend"):
            routes.append(
                Route(str(item["prefix"]), str(item["backend"]), bool(item.get("stripPrefix", False)))
            )
    devops = config.section("devops")
    if devops.get("endpoint"):
        for prefix in ("/kapis/devops.kubesphere.io", "/kapis/gitops.kubesphere.io"):
            routes.append(Route(prefix, str(devops["endpoint"])))
    if devops.get("host"):
        routes.append(Route("/kapis/jenkins.kubesphere.io", str(devops["host"]), strip_prefix=True))
    # Longest prefix first, so a specific route beats a general one.
    return tuple(sorted(routes, key=lambda r: len(r.prefix), reverse=True))


def is_kube_path(path: str) -> bool:
    """The Kubernetes API and its OpenAPI documents (kubectl reads those for apply and explain)."""
    return path in ("/api", "/apis", "/openapi") or path.startswith(("/api/", "/apis/", "/openapi/"))


def _forward_headers(request: web.Request, *, keep_auth: bool) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for key, value in request.headers.items():
        lower = key.lower()
        if lower in HOP_BY_HOP or (
            not keep_auth and (lower == "authorization" or lower.startswith(IDENTITY))
        ):
            continue
        headers.add(key, value)
    return headers


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    headers: CIMultiDict[str] = CIMultiDict(
        (k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP
    )
    length = upstream.content_length
    if length is not None and length <= BUFFER_LIMIT:
        body = await upstream.read()
        return web.Response(status=upstream.status, headers=headers, body=body)
    resp = web.StreamResponse(status=upstream.status, headers=headers)
    await resp.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await resp.write(chunk)
    except (aiohttp.ClientError, ConnectionResetError) as exc:
        # Headers are gone already: end the stream; the client sees it close.
        log.info("stream %s %s ended: %s", request.method, request.path, exc or type(exc).__name__)
        return resp
    await resp.write_eof()
    return resp


def _body(request: web.Request) -> Any:
    return request.content if request.body_exists else None


async def to_kube(ctx: Context, request: web.Request) -> web.StreamResponse:
    if request.headers.get("Upgrade"):
        return await upgrade.proxy(ctx.kube, request)
    try:
        async with ctx.kube.open(
            request.method,
            request.rel_url.raw_path_qs,
            headers=_forward_headers(request, keep_auth=False),
            data=_body(request),
            read_timeout=None,
        ) as upstream:
            return await _relay(request, upstream)
    except KubeUnavailable as exc:
        log.warning("proxy %s %s: %s", request.method, request.path, exc.message)
        raise APIError(503, "kube-apiserver is unavailable", as_status=True) from None


class Gateway:
    """Gateway routes and their own HTTP session (never carrying Kubernetes credentials)."""

    def __init__(
        self, routes: tuple[Route, ...], *, connect_timeout: float = 5.0, response_timeout: float = 60.0
    ) -> None:
        self.routes = routes
        self._connect_timeout = connect_timeout
        self._response_timeout = response_timeout
        self._session: aiohttp.ClientSession | None = None

    def match(self, path: str) -> Route | None:
        return next((r for r in self.routes if r.matches(path)), None)

    async def forward(self, route: Route, request: web.Request) -> web.StreamResponse:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
                auto_decompress=False,
            )
        url = route.target(request.rel_url.raw_path_qs)
        pending = self._session.request(
            request.method,
            url,
            headers=_forward_headers(request, keep_auth=True),
            data=_body(request),
            allow_redirects=False,
        )
        try:
            # Bounded until the response headers; a streaming body may then take as long as it takes.
            upstream = await asyncio.wait_for(pending, self._response_timeout)
        except TimeoutError:
            log.warning(
                "gateway %s -> %s: no answer in %.0fs", route.prefix, route.backend, self._response_timeout
            )
            raise APIError(
                504, f"the backend for {route.prefix} did not answer in time", reason="GatewayTimeout",
                as_status=True,
            ) from None  # fmt: skip
        except aiohttp.ClientConnectionError as exc:
            log.warning("gateway %s -> %s: %s", route.prefix, route.backend, exc or type(exc).__name__)
            raise APIError(
                502, f"the backend for {route.prefix} is unavailable", reason="BadGateway", as_status=True
            ) from None
        try:
            return await _relay(request, upstream)
        finally:
            upstream.release()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
