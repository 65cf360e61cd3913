"""Benchmark of the websocket watch through ks-apiserver (``make bench-watch``).

What the console's list pages do for live refresh: a websocket watch of one
namespace's objects.  On the local cluster, in one run, proxied (ks-apiserver,
bearer token, KubeSphere RBAC, the upgrade spliced to kube-apiserver) against
the same websocket watch straight to kube-apiserver (client certificate):

* **events per second**: ``--objects`` ConfigMaps are created first; a watch
  from the resourceVersion before them replays every ADDED event as fast as the
  path carries them.  Direct and proxied replays alternate, ``--rounds`` each;
  the proxied replay's ks-apiserver CPU time per event is recorded too.
* **added latency**: with one direct and one proxied watch open at once, a
  ConfigMap is patched ``--samples`` times, one at a time; each watch stamps the
  event when it arrives.  The per-event difference (proxied minus direct) is
  what the proxy adds; the write-to-event latency of each path is reported too.

ConfigMaps rather than Deployments keep kube-controller-manager out of the
stream.  Everything is created in one labelled namespace, deleted at the end.
Writes ``bench/results/watch.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from apiserver import kube
from bench import emit
from bench.apiserver import (
    CLIENT,
    PASSWORD,
    apply_platform,
    bounded,
    cleanup,
    cpu_seconds,
    create_platform_admin,
    ks_apiserver,
    summary,
)
from devcluster.cluster import LocalCluster

ORIGIN = "http://localhost"  # browsers send one; kube-apiserver refuses a websocket watch without it


class Watcher:
    """One websocket watch path: its session, URL base and headers."""

    def __init__(self, session: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> None:
        self.session, self.headers = session, headers
        self.base = base.replace("http", "ws", 1)

    def connect(self, path: str) -> Any:
        return self.session.ws_connect(self.base + path, headers=self.headers, origin=ORIGIN, max_msg_size=0)


async def replay(watcher: Watcher, ns: str, since: str, count: int) -> float:
    """Seconds to receive ``count`` ADDED events replayed from resourceVersion ``since``."""
    path = f"/api/v1/watch/namespaces/{ns}/configmaps?resourceVersion={since}"
    seen = 0
    async with watcher.connect(path) as ws:
        start = time.perf_counter()
        async for msg in ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                raise RuntimeError(f"watch ended after {seen} of {count} events: {msg}")
            if json.loads(msg.data)["type"] == "ADDED":
                seen += 1
                if seen == count:
                    return time.perf_counter() - start
    raise RuntimeError(f"watch ended after {seen} of {count} events")


async def latencies(
    client: kube.KubeClient, watchers: dict[str, Watcher], ns: str, samples: int
) -> dict[str, list[float]]:
    """Write-to-event seconds per watcher for ``samples`` sequential patches of one ConfigMap."""
    await client.create(kube.CONFIGMAPS, {"metadata": {"name": "probe"}, "data": {"n": "0"}}, namespace=ns)
    arrived: dict[str, dict[str, float]] = {name: {} for name in watchers}
    path = f"/api/v1/watch/namespaces/{ns}/configmaps?fieldSelector=metadata.name%3Dprobe"

    async def listen(name: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            event = json.loads(msg.data)
            value = (event["object"].get("data") or {}).get("n", "")
            arrived[name].setdefault(value, time.perf_counter())

    sockets = [await watchers[name].connect(path).__aenter__() for name in watchers]
    tasks = [asyncio.create_task(listen(name, ws)) for name, ws in zip(watchers, sockets, strict=True)]
    written: dict[str, float] = {}
    try:
        await asyncio.sleep(0.5)
        for i in range(1, samples + 1):
            value = str(i)
            written[value] = time.perf_counter()
            await client.patch(kube.CONFIGMAPS, "probe", {"data": {"n": value}}, namespace=ns)
            deadline = time.monotonic() + 10
            while not all(value in a for a in arrived.values()):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"event {value} did not arrive on every watch")
                await asyncio.sleep(0.0005)
    finally:
        for task in tasks:
            task.cancel()
        for ws in sockets:
            await ws.close()
    return {name: [arrived[name][v] - t for v, t in written.items()] for name in watchers}


async def scenario(
    args: argparse.Namespace, kubeconfig: Path, url: str, pid: int, run: str
) -> dict[str, Any]:
    client = kube.KubeClient.from_kubeconfig(kubeconfig)
    labels = {"ks-bench": run}
    admin = f"bench-admin-{run}"
    ns = f"bench-watch-{run}"
    try:
        await create_platform_admin(client, admin, labels)
        await client.create(kube.NAMESPACES, {"metadata": {"name": ns, "labels": labels}})
        _, since = await client.list_with_version(kube.CONFIGMAPS, namespace=ns)
        body = {"data": {"k": "v" * 200}}
        await bounded([
            lambda i=i: client.create(kube.CONFIGMAPS, {**body, "metadata": {"name": f"cm-{i}"}},
                                      namespace=ns)
            for i in range(args.objects)
        ])  # fmt: skip
        direct_conn = aiohttp.TCPConnector(ssl=client.ssl_context)
        async with aiohttp.ClientSession(connector=direct_conn) as direct_s, aiohttp.ClientSession() as ks_s:
            token = ""
            for _ in range(100):  # until the server's informer has the new user
                form = {**CLIENT, "grant_type": "password", "username": admin, "password": PASSWORD}
                async with ks_s.post(f"{url}/oauth/token", data=form) as r:
                    if r.status == 200:
                        token = (await r.json())["access_token"]
                        break
                await asyncio.sleep(0.1)
            if not token:
                raise RuntimeError("could not log in to ks-apiserver")
            watchers = {
                "direct": Watcher(direct_s, client.server, client.headers()),
                "proxied": Watcher(ks_s, url, {"Authorization": f"Bearer {token}"}),
            }
            rates: dict[str, list[float]] = {"direct": [], "proxied": []}
            cpu_per_event: list[float] = []
            for watcher in watchers.values():  # warm-up: kube-apiserver's watch cache, connections
                await replay(watcher, ns, since, args.objects)
            for _ in range(args.rounds):
                for name, watcher in watchers.items():
                    before = cpu_seconds(pid)
                    seconds = await replay(watcher, ns, since, args.objects)
                    rates[name].append(args.objects / seconds)
                    if name == "proxied":
                        cpu_per_event.append((cpu_seconds(pid) - before) / args.objects)
            seen = await latencies(client, watchers, ns, args.samples)
        added = [p - d for p, d in zip(seen["proxied"], seen["direct"], strict=True)]
        return {
            "events_per_second": {
                name: {"median": round(statistics.median(r)), "rounds": [round(x) for x in r]}
                for name, r in rates.items()
            },
            "proxied_over_direct_rate": round(
                statistics.median(rates["proxied"]) / statistics.median(rates["direct"]), 3
            ),
            "ks_apiserver_cpu_us_per_event": round(statistics.median(cpu_per_event) * 1e6, 1),
            "write_to_event_latency": {name: summary(values) for name, values in seen.items()},
            "added_latency": summary(added),
        }
    finally:
        await cleanup(client, f"ks-bench={run}")
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="websocket watch through ks-apiserver vs direct")
    parser.add_argument("--objects", type=int, default=2000, help="ConfigMaps each replay carries")
    parser.add_argument("--rounds", type=int, default=3, help="replays per path, alternating")
    parser.add_argument("--samples", type=int, default=300, help="sequential writes for the latency")
    parser.add_argument("--no-write", action="store_true", help="print only (trial runs)")
    args = parser.parse_args()
    info = LocalCluster().up(log=False)
    apply_platform(info.kubeconfig)
    run = uuid.uuid4().hex[:6]
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"ks-bench-watch-{run}"
    workdir.mkdir(parents=True)
    with ks_apiserver(info.kubeconfig, workdir) as (proc, url):
        result = asyncio.run(scenario(args, info.kubeconfig, url, proc.pid, run))
    result = {
        "benchmark": "watch",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "parameters": {"objects": args.objects, "rounds": args.rounds, "samples": args.samples},
        **result,
    }
    emit("watch", result, write=not args.no_write)


if __name__ == "__main__":
    main()
