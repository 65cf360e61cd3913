"""The console's container terminal: ``/kapis/terminal.kubesphere.io/v1alpha2/.../pods/{pod}/exec``.

What KubeSphere 3.4 serves the console's terminal window: a websocket carrying JSON
messages, ``{"Op": "stdin", "Data": ...}`` and ``{"Op": "resize", "Rows": r, "Cols": c}``
from the browser, ``{"Op": "stdout", "Data": ...}`` back.  The caller must be allowed to
``create pods/exec`` in the namespace.  The shell is the ``shell`` parameter when it is
``bash`` or ``sh``; otherwise bash, and sh when bash cannot start.  The session ends when
the shell does (or the browser goes).

Here it is a translation: each session is one exec websocket to kube-apiserver with the
server's credentials (``v4.channel.k8s.io``: stdin on channel 0, output on 1 and 2, the
exit status on 3, resizes on 4).  Unlike KubeSphere, a session that cannot start says why
in a ``{"Op": "toast"}`` message before it closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
from aiohttp import web

from apiserver import errors
from apiserver.kapis import common
from apiserver.kube import KubeClient
from apiserver.openapi import Param, Routes
from apiserver.requestinfo import RequestInfo, resource_scope

log = logging.getLogger("ks-apiserver")
PREFIX = "/kapis/terminal.kubesphere.io/v1alpha2"
routes = Routes(PREFIX, "Terminal")
SHELLS = ("bash", "sh")
PROTOCOL = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, STATUS, RESIZE = 0, 1, 2, 3, 4


class NotStarted(Exception):
    """The shell could not start (the next one may)."""


def exec_attributes(path: str, namespace: str, pod: str) -> RequestInfo:
    """``create pods/exec`` in ``namespace``: what the terminal is authorized as."""
    scope = resource_scope(api_group="", resource="pods", namespace=namespace, devops="", workspace="")
    return RequestInfo(
        path=path, verb="create", is_resource_request=True, api_prefix="api", api_version="v1",
        namespace=namespace, resource="pods", subresource="exec", name=pod, resource_scope=scope,
    )  # fmt: skip


def shells(asked: str | None) -> list[str]:
    return [asked] if asked in SHELLS else list(SHELLS)


def upstream_frame(message: Any) -> bytes | None:
    """The exec frame for one message of the browser's, or None for one to ignore."""
    if not isinstance(message, dict):
        return None
    op = message.get("Op")
    if op == "stdin":
        return bytes([STDIN]) + str(message.get("Data") or "").encode()
    if op == "resize":
        try:
            size = {"Width": int(message.get("Cols") or 0), "Height": int(message.get("Rows") or 0)}
        except (TypeError, ValueError):
            return None
        return bytes([RESIZE]) + json.dumps(size).encode()
    return None


@routes.add(
    "GET",
    "/namespaces/{namespace}/pods/{pod}/exec",
    summary="A terminal session in a container of the pod (websocket, JSON messages)",
    query=[Param("container", "Container name (default: the pod's only one)"), Param("shell", "bash or sh")],
)
async def terminal(request: web.Request) -> web.StreamResponse:
    ctx = common.ctx(request)
    namespace, pod = request.match_info["namespace"], request.match_info["pod"]
    decision = ctx.authorizer.authorize(common.caller(request), exec_attributes(request.path, namespace, pod))
    if not decision.allowed or decision.deferred:
        raise errors.forbidden(
            f'pods "{pod}" is forbidden: cannot create pods/exec in the namespace "{namespace}"'
        )
    browser = web.WebSocketResponse(heartbeat=30)
    if not browser.can_prepare(request).ok:
        raise errors.APIError(400, "a terminal session is a websocket: send Upgrade: websocket")
    await browser.prepare(request)
    container = request.query.get("container", "")
    candidates = shells(request.query.get("shell"))
    try:
        for i, shell in enumerate(candidates):
            try:
                await _session(ctx.kube, browser, namespace, pod, container, shell)
                break
            except NotStarted as exc:
                if i == len(candidates) - 1:
                    toast = {"Op": "toast", "Data": f"cannot start a shell: {exc}"}
                    await browser.send_str(json.dumps(toast))
    finally:
        await browser.close()
    return browser


async def _session(
    kube: KubeClient, browser: web.WebSocketResponse, namespace: str, pod: str, container: str, shell: str
) -> None:
    params = [("command", shell), ("stdin", "true"), ("stdout", "true"), ("stderr", "true"), ("tty", "true")]
    if container:
        params.append(("container", container))
    url = f"{kube.server}/api/v1/namespaces/{namespace}/pods/{pod}/exec"
    try:
        pod_side = await kube.session.ws_connect(
            url, params=params, headers=kube.headers(), protocols=(PROTOCOL,), heartbeat=30
        )
    except aiohttp.WSServerHandshakeError as exc:
        raise NotStarted(f"{exc.status} {exc.message}") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise NotStarted(f"kube-apiserver: {exc}") from None
    started = False

    async def to_pod() -> None:
        async for msg in browser:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                frame = upstream_frame(json.loads(msg.data))
            except ValueError:
                frame = None
            if frame is not None:
                await pod_side.send_bytes(frame)

    async def to_browser() -> None:
        nonlocal started
        async for msg in pod_side:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel in (STDOUT, STDERR):
                started = True
                await browser.send_str(json.dumps({"Op": "stdout", "Data": data.decode(errors="replace")}))
            elif channel == STATUS and data:
                status = json.loads(data)
                exited = status.get("status") == "Success" or status.get("reason") == "NonZeroExitCode"
                if not exited and not started:
                    raise NotStarted(str(status.get("message") or "the shell did not start"))
                return

    async with pod_side:
        tasks = [asyncio.ensure_future(to_pod()), asyncio.ensure_future(to_browser())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            failure = task.exception()
            if isinstance(failure, NotStarted):
                raise failure
            if failure is not None and not isinstance(failure, (ConnectionResetError, aiohttp.ClientError)):
                log.warning("terminal %s/%s: %s", namespace, pod, failure)
