"""The console's live views through ks-apiserver: websocket watches and the container terminal.

The list pages refresh over a websocket watch (``/apis/apps/v1/watch/namespaces/{ns}/deployments``,
opened by the browser, so with an ``Origin``: kube-apiserver refuses a websocket watch without one);
the terminal is a websocket exec.  Both go through ks-apiserver's authorization and are spliced to
kube-apiserver.  The exec reaches a real process: KWOK's fake kubelet runs the command locally for a
pod that has an ``Exec`` object, so what is typed comes back from ``cat``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from kubernetes import client

from tests.console.support import Site
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster

#: kube-apiserver's websocket stream protocol with the close signal (stdin ends: channel 255).
V5 = "v5.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


@dataclass
class Exec:
    stdout: bytes
    stderr: bytes
    status: dict[str, Any]


def ws_url(base: str, path: str) -> str:
    return base.replace("http", "ws", 1) + path


async def ws_exec(base: str, token: str, path: str, command: list[str], stdin: bytes | None) -> Exec:
    """A websocket exec as the console's terminal opens one: stdin, then the close signal."""
    params = [("command", c) for c in command] + [("stdout", "true"), ("stderr", "true")]
    if stdin is not None:
        params.append(("stdin", "true"))
    out, err, status = bytearray(), bytearray(), {}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            ws_url(base, path), params=params, protocols=[V5],
            headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientWSTimeout(ws_close=30),
        ) as ws,
    ):  # fmt: skip
        assert ws.protocol == V5
        if stdin is not None:
            await ws.send_bytes(bytes([STDIN]) + stdin)
            await ws.send_bytes(bytes([CLOSE, STDIN]))
        async with asyncio.timeout(60):
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                    continue
                channel, data = msg.data[0], msg.data[1:]
                if channel == STDOUT:
                    out += data
                elif channel == STDERR:
                    err += data
                elif channel == ERROR and data:
                    status = json.loads(data)
    return Exec(bytes(out), bytes(err), status)


async def ws_status(base: str, token: str, path: str) -> int:
    """The handshake's answer: 101, or the status that refused it."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                ws_url(base, path), protocols=[V5], headers={"Authorization": f"Bearer {token}"}
            ),
        ):
            return 101
    except aiohttp.WSServerHandshakeError as exc:
        return exc.status


def test_websocket_watch_of_deployments_streams_events(live: Site) -> None:
    """The list page's live refresh: ADDED and DELETED arrive over the websocket as they happen."""
    name = f"d-{uuid.uuid4().hex[:6]}"
    apps = client.AppsV1Api(live.cluster.api)
    path = f"/apis/apps/v1/watch/namespaces/{live.ns}/deployments"

    async def watch() -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                ws_url(live.server.url, path),
                origin=live.server.url,
                headers={"Authorization": f"Bearer {live.tokens['viewer']}"},
            ) as ws,
        ):
            await asyncio.to_thread(apps.create_namespaced_deployment, live.ns, deployment(name))
            await asyncio.to_thread(apps.delete_namespaced_deployment, name, live.ns)
            async with asyncio.timeout(60):
                async for msg in ws:
                    assert msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), msg
                    event = json.loads(msg.data)
                    seen.append((event["type"], event["object"]["metadata"]["name"]))
                    if ("DELETED", name) in seen:
                        return seen
        return seen

    seen = asyncio.run(watch())
    assert ("ADDED", name) in seen and seen.index(("ADDED", name)) < seen.index(("DELETED", name))


def test_watch_ended_by_kube_apiserver_closes_the_websocket(live: Site) -> None:
    """kube-apiserver ending the watch (its timeout) ends the caller's websocket too."""
    path = f"/apis/apps/v1/watch/namespaces/{live.ns}/deployments?timeoutSeconds=1"

    async def watch() -> aiohttp.WSMsgType:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                ws_url(live.server.url, path),
                origin=live.server.url,
                headers={"Authorization": f"Bearer {live.tokens['viewer']}"},
            ) as ws,
        ):
            async with asyncio.timeout(30):
                while True:
                    msg = await ws.receive()
                    if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        return msg.type

    assert asyncio.run(watch()) in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


def _upstream_sockets(pid: int, port: int) -> int:
    """Established TCP connections of process ``pid`` to local ``port`` (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                remote, state, inode = fields[2], fields[3], fields[9]
                if inode in inodes and state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def _raw_websocket(url: str, path: str, token: str) -> socket.socket:
    """A websocket handshake on a bare socket (so the test can drop it without a close frame)."""
    parsed = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (f"GET {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {url}\r\n"
         f"Authorization: Bearer {token}\r\n\r\n").encode()
    )  # fmt: skip
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head[:200]
    return sock


def test_a_caller_that_goes_away_closes_the_upstream_connection(live: Site) -> None:
    """Dropped websockets (no close frame) take their kube-apiserver connections with them."""
    pid = live.server.proc.pid
    port = int(urllib.parse.urlsplit(live.cluster.server).port or 443)
    before = _upstream_sockets(pid, port)
    path = f"/apis/apps/v1/watch/namespaces/{live.ns}/deployments"
    sockets = [_raw_websocket(live.server.url, path, live.tokens["viewer"]) for _ in range(5)]
    try:
        assert _upstream_sockets(pid, port) >= before + 5
    finally:
        for sock in sockets:
            sock.close()
    wait_for(
        lambda: _upstream_sockets(pid, port) <= before, timeout=30, what="the upstream connections closed"
    )


def test_websocket_watch_needs_the_right_to_watch(live: Site) -> None:
    """A user who is not in the project is refused at the handshake (403), nothing is streamed."""
    path = f"/apis/apps/v1/watch/namespaces/{live.ns}/deployments"
    assert asyncio.run(ws_status(live.server.url, live.tokens["wsadmin"] + "x", path)) == 401
    outsider = live.server.make_user(f"out-{live.tag}", "P@88w0rd-Console1")
    token = live.server.login(outsider, "P@88w0rd-Console1")
    assert asyncio.run(ws_status(live.server.url, token, path)) == 403


def test_terminal_exec_round_trip(live: Site) -> None:
    """The project operator's terminal: a typed line reaches the process, its answer comes back, exit 0.

    (KWOK's local exec does not pass the end of stdin on, so the command reads one line and exits.)
    """
    path = f"/api/v1/namespaces/{live.ns}/pods/term/exec"
    typed = f"typed-{uuid.uuid4().hex}"
    command = ["sh", "-c", 'read -r line; echo "got:$line"']
    result = asyncio.run(
        ws_exec(live.server.url, live.tokens["regular"], path, command, typed.encode() + b"\n")
    )
    assert result.stdout == f"got:{typed}\n".encode()
    assert result.status.get("status") == "Success", result.status
    failed = asyncio.run(
        ws_exec(live.server.url, live.tokens["regular"], path, ["sh", "-c", "echo oops >&2; exit 3"], None)
    )
    assert failed.stderr == b"oops\n"
    assert failed.status.get("status") == "Failure", failed.status


def test_exec_is_authorized_as_create_pods_exec(live: Site) -> None:
    """A project viewer reads pods but may not open a terminal (create pods/exec); the operator may."""
    path = f"/api/v1/namespaces/{live.ns}/pods/term/exec?command=true&stdout=true"
    assert live.send("viewer", "GET", f"/api/v1/namespaces/{live.ns}/pods/term").status_code == 200
    assert asyncio.run(ws_status(live.server.url, live.tokens["viewer"], path)) == 403
    assert asyncio.run(ws_status(live.server.url, live.tokens["regular"], path)) == 101
    attach = f"/api/v1/namespaces/{live.ns}/pods/term/attach?stdout=true"
    assert asyncio.run(ws_status(live.server.url, live.tokens["viewer"], attach)) == 403


async def console_terminal(base: str, token: str, path: str, typed: list[str]) -> list[dict[str, Any]]:
    """The console's terminal window: JSON messages over a websocket, until the server closes it."""
    got: list[dict[str, Any]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            ws_url(base, path), headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientWSTimeout(ws_close=30),
        ) as ws,
    ):  # fmt: skip
        await ws.send_str(json.dumps({"Op": "resize", "Rows": 40, "Cols": 120}))
        # Type once the shell has said something (its prompt), as a person would; the fake
        # kubelet's exec passes on only what arrives after the process started.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while not "".join(m.get("Data", "") for m in got).strip():
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    got.append(json.loads(msg.data))
        for line in typed:
            await ws.send_str(json.dumps({"Op": "stdin", "Data": line}))
        async with asyncio.timeout(60):
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    got.append(json.loads(msg.data))
    return got


def test_console_terminal_route_runs_a_shell_in_the_container(live: Site) -> None:
    """``/kapis/terminal.kubesphere.io``: what is typed reaches a shell in the pod, its output comes back
    as ``stdout`` messages, and the session closes when the shell exits. A viewer is refused."""
    path = f"/kapis/terminal.kubesphere.io/v1alpha2/namespaces/{live.ns}/pods/term/exec?shell=sh"
    typed = f"typed-{uuid.uuid4().hex}"
    got = asyncio.run(
        console_terminal(live.server.url, live.tokens["regular"], path, [f'echo "got:{typed}"\n', "exit\n"])
    )
    output = "".join(m["Data"] for m in got if m.get("Op") == "stdout")
    assert f"got:{typed}" in output, got
    assert all(m.get("Op") == "stdout" for m in got), got
    assert asyncio.run(ws_status(live.server.url, live.tokens["viewer"], path)) == 403
    # A shell the container does not have: the session says so, then closes.
    missing = f"/kapis/terminal.kubesphere.io/v1alpha2/namespaces/{live.ns}/pods/no-such-pod/exec"
    got = asyncio.run(console_terminal(live.server.url, live.tokens["regular"], missing, []))
    assert got and got[-1]["Op"] == "toast" and "cannot start a shell" in got[-1]["Data"], got
