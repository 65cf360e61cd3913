"""Benchmark of the monitoring API (``make bench-monitoring``): what ks-apiserver adds to a query.

On the local cluster, in one run, Debian's Prometheus (loopback, 1 s scrapes of kube-apiserver,
kube-scheduler and etcd, the monitoring role's recording rules) answers the same PromQL twice:

* **through ks-apiserver**: ``GET /kapis/monitoring.kubesphere.io/v1alpha3/components/apiserver``
  with a bearer token (authentication, KubeSphere RBAC, the metric table, the reshaped answer);
* **directly**: ``GET /api/v1/query`` (or ``query_range``) of Prometheus with the expression the
  metric stands for, at the same ``time`` (or range), so Prometheus does the same work.

Three shapes, interleaved call by call so drift hits both alike: one instant metric, one range
metric (5 minutes at 10 s steps), and the whole component (5 metrics in one call, against the 5
expressions sent to Prometheus concurrently, as ks-apiserver sends them).  Reported: p50/p90/p99,
the p50 difference (the added latency) and ratio, and ks-apiserver's CPU per call.
Writes ``bench/results/monitoring.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from apiserver import kube
from apiserver.monitoring import promql
from bench import emit
from bench.apiserver import CLIENT, PASSWORD, apply_platform, cpu_seconds, create_platform_admin, summary
from devcluster.cluster import LocalCluster
from devcluster.cluster import State as ClusterState
from devcluster.services import PrometheusServer, RedisServer, free_port, local_cluster_jobs

REPO = Path(__file__).resolve().parent.parent
MON = "/kapis/monitoring.kubesphere.io/v1alpha3/components/apiserver"


async def timed(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    async with session.get(url, headers=headers) as resp:
        body = await resp.read()
        if resp.status != 200 or b'"error"' in body:
            raise RuntimeError(f"GET {url}: {resp.status} {body[:300]!r}")
    return time.perf_counter() - start


async def timed_all(session: aiohttp.ClientSession, urls: list[str]) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(timed(session, u) for u in urls))
    return time.perf_counter() - start


def prom_url(base: str, api: str, **params: Any) -> str:
    return f"{base}/api/v1/{api}?{urllib.parse.urlencode(params)}"


async def measure(args: argparse.Namespace, prom: str, ks: str, token: str, pid: int) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}"}
    at = int(time.time()) - 5
    window = {"start": at - 300, "end": at, "step": "10s"}
    shapes = {
        "instant_one_metric": (
            f"{ks}{MON}?metrics_filter=apiserver_request_by_verb_rate$&time={at}",
            [prom_url(prom, "query", query=promql.APISERVER["apiserver_request_by_verb_rate"], time=at)],
        ),
        "range_one_metric_5m_10s": (
            f"{ks}{MON}?metrics_filter=apiserver_request_rate$&{urllib.parse.urlencode(window)}",
            [prom_url(prom, "query_range", query=promql.APISERVER["apiserver_request_rate"], **window)],
        ),
        "instant_component_5_metrics": (
            f"{ks}{MON}?time={at}",
            [prom_url(prom, "query", query=expr, time=at) for expr in promql.APISERVER.values()],
        ),
    }
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for name, (through, direct) in shapes.items():
            for _ in range(20):  # warm connections, caches and Prometheus
                await timed(session, through, auth)
                await timed_all(session, direct)
            via: list[float] = []
            straight: list[float] = []
            for _ in range(args.samples):
                via.append(await timed(session, through, auth))
                straight.append(await timed_all(session, direct))
            before = cpu_seconds(pid)
            for _ in range(args.samples):
                await timed(session, through, auth)
            cpu_ms = (cpu_seconds(pid) - before) / args.samples * 1000
            a, b = summary(via), summary(straight)
            out[name] = {
                "through_ks_apiserver": a,
                "prometheus_direct": b,
                "added_p50_ms": round(a["p50_ms"] - b["p50_ms"], 3),
                "p50_ratio": round(a["p50_ms"] / b["p50_ms"], 2),
                "ks_apiserver_cpu_ms_per_call": round(cpu_ms, 3),
                "prometheus_queries_per_call": len(direct),
            }
    out["samples"] = args.samples
    return out


async def make_admin(kubeconfig: Path, name: str, label: dict[str, str]) -> None:
    client = kube.KubeClient.from_kubeconfig(kubeconfig)
    try:
        await create_platform_admin(client, name, label)
    finally:
        await client.close()


async def remove_admin(kubeconfig: Path, name: str) -> None:
    client = kube.KubeClient.from_kubeconfig(kubeconfig)
    try:
        for res, obj in ((kube.GLOBALROLEBINDINGS, f"{name}-platform-admin"), (kube.USERS, name)):
            try:
                await client.delete(res, obj)
                if res is kube.USERS:
                    await client.patch(res, obj, {"metadata": {"finalizers": None}})
            except kube.KubeError as exc:
                if exc.status != 404:
                    raise
    finally:
        await client.close()


def _wait(url: str, *, data: bytes | None = None, timeout: float = 60, ok: Any = None) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, data=data, timeout=5) as resp:
                body: bytes = resp.read()
                if resp.status == 200 and (ok is None or ok(body)):
                    return body
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer as expected within {timeout}s")
        time.sleep(0.3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    local = LocalCluster()
    info = local.up(log=False)
    apply_platform(info.kubeconfig)
    run_label = uuid.uuid4().hex[:6]
    admin = f"bench-mon-{run_label}"
    workdir = REPO / ".local" / f"bench-monitoring-{run_label}"
    ports = ClusterState.load(local.state_file).ports
    prom = PrometheusServer(workdir=workdir / "prometheus", jobs=local_cluster_jobs(local.dir, ports))
    with prom.start(), RedisServer().start() as redis:
        config = {
            "authentication": {"multipleLogin": True, "oauthOptions": {
                "clients": [{"name": "kubesphere", "secret": "kubesphere"}]}},
            "cache": {"type": "redis", "options": {"host": "127.0.0.1", "port": redis.port}},
            "monitoring": {"endpoint": prom.url},
        }  # fmt: skip
        (workdir / "kubesphere.yaml").write_text(yaml.safe_dump(config))
        port = free_port()
        env = {**os.environ, "KUBESPHERE_JWT_SECRET": secrets.token_urlsafe(32),
               "KUBESPHERE_CACHE_PASSWORD": redis.password, "KS_APISERVER_LOG_LEVEL": "WARNING"}  # fmt: skip
        log = workdir / "apiserver.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "apiserver.cli", "--config", str(workdir / "kubesphere.yaml"),
                 "--kubeconfig", str(info.kubeconfig), "--bind", f"127.0.0.1:{port}"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(f"{url}/readyz")
            asyncio.run(make_admin(info.kubeconfig, admin, {"ks-bench": run_label}))
            form = urllib.parse.urlencode({**CLIENT, "grant_type": "password", "username": admin,
                                           "password": PASSWORD}).encode()  # fmt: skip
            token = yaml.safe_load(_wait(f"{url}/oauth/token", data=form))["access_token"]
            # Five minutes of rule values exist only after five minutes; a range is judged on what is there.
            rate = promql.APISERVER["apiserver_request_rate"]
            _wait(prom_url(prom.url, "query", query=rate), ok=lambda b: b'"value"' in b, timeout=90)
            result = asyncio.run(measure(args, prom.url, url, token, proc.pid))
        finally:
            proc.terminate()
            proc.wait(20)
            asyncio.run(remove_admin(info.kubeconfig, admin))
    return {
        "benchmark": "monitoring",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "prometheus": subprocess.run(
            ["prometheus", "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0],
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="monitoring API benchmark")
    parser.add_argument("--samples", type=int, default=300, help="calls per measurement and way")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    result = run(args)
    emit("monitoring", result, write=not args.no_write)


if __name__ == "__main__":
    main()
