"""The aiohttp application: KubeSphere's filter chain, health, metrics, and the routes.

Middlewares run outermost first, in ks-apiserver's order (after ``instrument``,
which only counts every answer for Prometheus):

1. **error guard** — ``APIError`` becomes its response (a Status for filters,
   text/plain for handlers), ``KubeError`` text/plain with its code, anything
   unexpected a 500 Status carrying an error id that is also logged with the
   traceback; the process never dies of a request;
2. **request info** (``apiserver.requestinfo.resolve``);
3. **authentication** (anonymous, basic, bearer);
4. **authorization** (``ctx.authorizer``; deny is a 403 Status);
5. **audit** — one structured log line per authorized request (user, verb,
   path, status, duration; never headers, query strings or bodies);
6. **proxy** — ``/api``, ``/apis``, ``/openapi`` and gateway prefixes are
   forwarded (upgrades spliced, ``apiserver.upgrade``), except the caller's
   reviews of itself (``apiserver.selfreview``); the rest reaches the routes
   (``/oauth``, the ``/kapis`` handlers, health).

``/healthz``, ``/livez`` and ``/readyz`` skip authentication so probes work;
until the caches have synced every other request gets 503, because an answer
from half-filled caches would be wrong rather than slow.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from apiserver import authn, firstlogin, metrics, oauth, proxy, requestinfo, selfreview
from apiserver.context import CONTEXT, INFO_KEY, USER_KEY, Context
from apiserver.errors import APIError, status_body
from apiserver.identity import ANONYMOUS_USER, UserInfo
from apiserver.kube import KubeError
from apiserver.tokens import StoreUnavailable

log = logging.getLogger(__name__)
audit_log = logging.getLogger("apiserver.audit")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROBES = frozenset({"/healthz", "/livez", "/readyz"})
GATEWAY: web.AppKey[proxy.Gateway] = web.AppKey("gateway", proxy.Gateway)


def _status(code: int, message: str, *, reason: str | None = None) -> web.Response:
    return web.json_response(status_body(code, message, reason=reason), status=code)


def error_response(exc: APIError) -> web.Response:
    if exc.as_status:
        return _status(exc.code, exc.message, reason=exc.reason)
    return web.Response(status=exc.code, text=exc.message + "\n", content_type="text/plain")


@web.middleware
async def error_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except APIError as exc:
        return error_response(exc)
    except KubeError as exc:
        return web.Response(status=exc.status, text=exc.message + "\n", content_type="text/plain")
    except StoreUnavailable as exc:
        log.error("token cache unavailable: %s", exc)
        return _status(503, "the token cache is unavailable")
    except web.HTTPException as exc:
        if exc.status == 404 and exc.text == "404: Not Found":
            return web.Response(status=404, text="404 page not found\n", content_type="text/plain")
        raise
    except Exception:
        error_id = uuid.uuid4().hex[:16]
        metrics.ERRORS.inc()
        log.exception("internal error %s on %s %s", error_id, request.method, request.path)
        return _status(500, f"Internal error occurred: an unexpected error happened (error id {error_id})")


@web.middleware
async def request_info(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Authorization reads the path as written; a dot segment would let the proxied
    # call reach something other than what was authorized.
    if any(segment in (".", "..") for segment in request.path.split("/")):
        raise APIError(400, f"invalid path {request.path!r}: dot segments are not allowed", as_status=True)
    request[INFO_KEY] = requestinfo.resolve(request.method, request.path, request.query)
    return await handler(request)


@web.middleware
async def authentication(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    if request.path in PROBES:
        request[USER_KEY] = ANONYMOUS_USER
        return await handler(request)
    if not ctx.caches.synced():
        raise APIError(503, "the server is starting: caches are not synced yet", as_status=True)
    request[USER_KEY] = await authn.authenticate(ctx, request)
    return await handler(request)


@web.middleware
async def authorization(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in PROBES:
        ctx = request.app[CONTEXT]
        user: UserInfo = request[USER_KEY]
        info = request[INFO_KEY]
        if not ctx.authorizer.authorize(user, info).allowed:
            if not firstlogin.candidate(request, user):
                raise APIError(403, ctx.authorizer.forbidden_message(user, info), as_status=True)
            request[firstlogin.CANDIDATE] = True  # only the first-login patch gets through (or 403)
    return await handler(request)


@web.middleware
async def instrument(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outside the error guard, so every answer is counted, 401s and 403s included."""
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        info = request.get(INFO_KEY)
        metrics.observe(info.verb if info is not None else request.method, status, request.path,
                        time.perf_counter() - start)  # fmt: skip


@web.middleware
async def audit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per authorized request: who, what, the answer and how long it took."""
    if request.path in PROBES or not audit_log.isEnabledFor(logging.INFO):
        return await handler(request)
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except APIError as exc:
        status = exc.code
        raise
    except KubeError as exc:
        status = exc.status
        raise
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        user = request.get(USER_KEY)
        info = request.get(INFO_KEY)
        record = {
            "user": user.name if user is not None else "",
            "verb": info.verb if info is not None else request.method,
            "method": request.method,
            "path": request.path,
            "status": status,
            "ms": round((time.perf_counter() - start) * 1000, 2),
        }
        audit_log.info(json.dumps(record))


@web.middleware
async def forward(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if request.get(firstlogin.CANDIDATE):
        return await firstlogin.handle(request)
    if selfreview.handles(request):
        return await selfreview.answer(request)
    if proxy.is_kube_path(path):
        return await proxy.to_kube(request.app[CONTEXT], request)
    gateway = request.app[GATEWAY]
    route = gateway.match(path)
    if route is not None:
        return await gateway.forward(route, request)
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    problems = [f"cache {name} not synced" for name in ctx.caches.unsynced()]
    if not await ctx.tokens.store.ping():
        problems.append("token cache unreachable")
    if problems:
        return web.Response(status=503, text="\n".join(problems) + "\n")
    return web.Response(text="ok")


async def metrics_handler(request: web.Request) -> web.Response:
    return metrics.render(request.app[CONTEXT].caches)


def build_app(ctx: Context) -> web.Application:
    """The application; the caller starts ``ctx.caches`` (see ``cli``) and closes ``ctx`` after."""
    app = web.Application(
        middlewares=[instrument, error_guard, request_info, authentication, authorization, audit, forward],
        client_max_size=32 << 20,
    )
    app[CONTEXT] = ctx
    app[GATEWAY] = proxy.gateway(ctx.config)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    oauth.setup(app)
    _setup_kapis(app)

    async def close_gateway(app: web.Application) -> None:
        await app[GATEWAY].close()

    app.on_cleanup.append(close_gateway)
    return app


def _setup_kapis(app: web.Application) -> None:
    import importlib

    try:
        kapis = importlib.import_module("apiserver.kapis")
    except ModuleNotFoundError:
        kapis = None
    setup = getattr(kapis, "setup", None)
    if setup is None:  # the /kapis package has not landed yet: no routes, nothing let through
        log.warning("apiserver.kapis is not available; /kapis routes are not served")
        return
    setup(app)
