"""Benchmark of the installer operator (``make bench-installer``).

On the local cluster, with the probe roles of the engine tests (real objects,
small roles), in one run:

* **no-op reconcile**: restart the operator on a Ready ClusterConfiguration;
  wall time from process start until it reports nothing to do, and the API
  writes it made (status and events; the Lease is counted apart).  Baseline:
  one ``ansible-playbook`` run of a component's role, measured in the same run.
* **toggle latency**: from ``kubectl patch`` switching one component on until
  its status says Enabled; the same component's own playbook time (from its
  status) is the baseline.
* **peak RSS** of the operator process (VmHWM) over a full install, against a
  bare interpreter that imports the same libraries.

Writes ``bench/results/installer.json``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client

from bench import write_result
from devcluster import kube
from devcluster.build import ensure_binaries
from devcluster.cluster import LocalCluster
from devcluster.processes import free_port

REPO = Path(__file__).resolve().parent.parent
TABLE = REPO / "tests" / "installer" / "components-test.yaml"
ROLES = REPO / "tests" / "installer" / "roles"
CRD = REPO / "deploy" / "crds" / "installer.kubesphere.io_clusterconfigurations.yaml"
GROUP, VERSION, PLURAL = "installer.kubesphere.io", "v1alpha1", "clusterconfigurations"


def _start(kubeconfig: Path, ns: str, log: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, KS_INSTALLER_EXTRA_ROLES_PATHS=str(ROLES), KS_INSTALLER_PROGRESS_INTERVAL="2")
    cmd = [sys.executable, "-m", "installer.cli", "--kubeconfig", str(kubeconfig), "-n", ns, "run",
           "--component-table", str(TABLE), "--listen", f"127.0.0.1:{port}",
           "--no-leader-election"]  # fmt: skip
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def _wait(check: Any, what: str, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


def _writes(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        k: float(v)
        for k, v in re.findall(r'^ks_installer_api_writes_total\{kind="(\w+)"\} (\S+)$', text, re.M)
    }


def _vm(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def run() -> dict[str, Any]:
    ensure_binaries()
    info = LocalCluster().up(log=False)
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"{ns}-operator.log"
    api = kube.api_client(info.kubeconfig)
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    kube.apply_crd(api, CRD)
    core.create_namespace({"metadata": {"name": ns}})
    procs: list[subprocess.Popen[bytes]] = []
    try:
        spec = {"probe": {n: {"enabled": True, "namespace": ns} for n in ("alpha", "beta", "gamma")}}
        spec["probe"]["delta"] = {"enabled": False, "namespace": ns}
        custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL,
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterConfiguration",
             "metadata": {"name": "ks-installer"}, "spec": spec},
        )  # fmt: skip

        def get() -> dict[str, Any]:
            obj: dict[str, Any] = custom.get_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, "ks-installer"
            )
            return obj

        def ready() -> bool:
            cc = get()
            conds = {c["type"]: c for c in (cc.get("status") or {}).get("conditions") or []}
            r = conds.get("Ready", {})
            return r.get("status") == "True" and r.get("observedGeneration") == cc["metadata"]["generation"]

        # Full install, sampling the operator's peak RSS.
        port = free_port()
        t0 = time.monotonic()
        op = _start(info.kubeconfig, ns, logs, port)
        procs.append(op)
        _wait(ready, "full install")
        full_install = time.monotonic() - t0
        peak_rss = _vm(op.pid, "VmHWM")
        one_run = get()["status"]["components"]["gamma"]["lastRunSeconds"]

        # No-op reconcile: restart on the Ready CR.
        op.send_signal(signal.SIGTERM)
        op.wait(60)
        rv_before = get()["metadata"]["resourceVersion"]
        port = free_port()
        offset = logs.stat().st_size
        t0 = time.monotonic()
        op = _start(info.kubeconfig, ns, logs, port)
        procs.append(op)
        _wait(lambda: "nothing to do" in logs.read_text()[offset:], "no-op reconcile")
        noop = time.monotonic() - t0
        time.sleep(3)
        writes = _writes(port)
        rv_after = get()["metadata"]["resourceVersion"]

        # Toggle one component on.
        t0 = time.monotonic()
        subprocess.run(
            [str(ensure_binaries()["kubectl"]), f"--kubeconfig={info.kubeconfig}", "patch", f"-n{ns}", "cc",
             "ks-installer", "--type=json", "-p",
             json.dumps([{"op": "replace", "path": "/spec/probe/delta/enabled", "value": True}])],
            check=True, capture_output=True,
        )  # fmt: skip
        _wait(lambda: (get()["status"]["components"].get("delta") or {}).get("state") == "Enabled", "toggle")
        toggle = time.monotonic() - t0
        delta_run = get()["status"]["components"]["delta"]["lastRunSeconds"]

        bare = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import kubernetes, ansible_runner, prometheus_client, yaml, time; time.sleep(3)",
            ]
        )
        time.sleep(2)
        bare_rss = _vm(bare.pid, "VmHWM")
        bare.wait()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        core.delete_namespace(ns)
        api.close()
    return {
        "benchmark": "installer",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count()},
        "components": 3,
        "full_install_seconds": round(full_install, 2),
        "noop_reconcile_seconds": round(noop, 2),
        "noop_api_writes": {k: v for k, v in writes.items()},
        "noop_status_or_event_writes": writes.get("status", 0) + writes.get("event", 0),
        "noop_resource_version_unchanged": rv_before == rv_after,
        "one_component_playbook_seconds": one_run,
        "noop_vs_one_playbook_ratio": round(noop / one_run, 2),
        "toggle_to_enabled_seconds": round(toggle, 2),
        "toggle_component_playbook_seconds": delta_run,
        "toggle_overhead_seconds": round(toggle - delta_run, 2),
        "operator_peak_rss_mib": round(peak_rss, 1),
        "bare_interpreter_same_imports_rss_mib": round(bare_rss, 1),
        "operator_vs_bare_rss_ratio": round(peak_rss / bare_rss, 2),
    }


def main() -> None:
    write_result("installer", run())


if __name__ == "__main__":
    main()
