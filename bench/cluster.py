"""Benchmark of the local control plane (``make bench-cluster``).

Measures, in one run, on a throwaway cluster with its own state directory:
cold build time (recorded by the build beside the binaries), warm start time,
time for a 100-replica Deployment to become Available against a 1-replica
baseline, and API round-trip p50 for a GET of a stored object against
``/version`` (served from memory, no storage) as the baseline.  Writes ``bench/results/cluster.json``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from bench import write_result
from devcluster import kube
from devcluster.build import ensure_binaries
from devcluster.cluster import LocalCluster
from devcluster.settings import cache_dir, load_versions

SAMPLES = 300


def _build_seconds() -> dict[str, float | None]:
    v = load_versions()
    out: dict[str, float | None] = {}
    for name in (f"etcd-{v.etcd}", f"kwok-{v.kwok}", f"kubernetes-{v.kubernetes}"):
        record = cache_dir() / "bin" / name / "build.json"
        out[name] = json.loads(record.read_text())["seconds"] if record.exists() else None
    return out


def _rollout(apps: client.AppsV1Api, ns: str, name: str, replicas: int) -> float:
    labels = {"app": name}
    started = time.monotonic()
    apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "registry.local/bench:1"}]},
                },
            },
        },
    )
    deadline = started + 600
    while time.monotonic() < deadline:
        d = apps.read_namespaced_deployment_status(name, ns)
        if (d.status.available_replicas or 0) == replicas:
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"deployment {name} did not reach {replicas} available replicas")


def _p50_ms(call: Any) -> float:
    for _ in range(20):
        call()
    samples = []
    for _ in range(SAMPLES):
        t = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


def _rss_mib(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[name] = round(int(line.split()[1]) / 1024, 1)
        except FileNotFoundError:
            continue
    return out


def run() -> dict[str, Any]:
    ensure_binaries()
    with tempfile.TemporaryDirectory(prefix="ks-bench-") as tmp:
        local = LocalCluster(state=Path(tmp) / "cluster")
        t = time.monotonic()
        info = local.up(log=False)
        warm_start = time.monotonic() - t
        try:
            with kube.api_client(info.kubeconfig) as api:
                core = client.CoreV1Api(api)
                apps = client.AppsV1Api(api)
                core.create_namespace({"metadata": {"name": "bench"}})
                one = _rollout(apps, "bench", "one", 1)
                hundred = _rollout(apps, "bench", "hundred", 100)
                get_ms = _p50_ms(lambda: core.read_namespace("default"))
                version_ms = _p50_ms(client.VersionApi(api).get_code)
                rss = _rss_mib(local.running().pids if local.running() else {})
        finally:
            local.down()
    return {
        "benchmark": "cluster",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": load_versions().__dict__,
        "cold_build_seconds": _build_seconds(),
        "warm_start_seconds": round(warm_start, 2),
        "deployment_1_replica_available_seconds": round(one, 2),
        "deployment_100_replicas_available_seconds": round(hundred, 2),
        "deployment_100_vs_1_ratio": round(hundred / one, 2),
        "api_get_namespace_p50_ms": round(get_ms, 3),
        "api_version_p50_ms": round(version_ms, 3),
        "api_get_vs_version_ratio": round(get_ms / version_ms, 2),
        "api_samples": SAMPLES,
        "rss_mib_after_100_pods": rss,
    }


def main() -> None:
    write_result("cluster", run())


if __name__ == "__main__":
    main()
