"""``make up``'s second half: the operator installing the platform on the local cluster.

The operator runs as a local process against the local cluster's kubeconfig,
exactly as ``ks-installer run`` does out of cluster (no container runtime is
needed).  ``up`` applies the CRD, starts the operator unless it is running,
creates the sample ClusterConfiguration unless one exists (a user's changes
to it are kept), waits for the Welcome banner, then starts the platform's own
backend, ks-controller-manager and ks-apiserver, beside the cluster
(devcluster/backend.py) and logs in as admin.  ``down`` stops them all.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from devcluster import backend, kube, realpods
from devcluster.build import ensure_binaries
from devcluster.cluster import LocalCluster
from devcluster.processes import pid_alive, pidfile_pid, spawn, stop_pidfile
from devcluster.settings import REPO_ROOT, state_dir

CRD = REPO_ROOT / "deploy" / "crds" / "installer.kubesphere.io_clusterconfigurations.yaml"
SAMPLE = REPO_ROOT / "deploy" / "cluster-configuration.yaml"
GROUP, VERSION, PLURAL = "installer.kubesphere.io", "v1alpha1", "clusterconfigurations"


def _paths() -> tuple[Path, Path, Path]:
    base = state_dir().parent
    return base / "cluster" / "kubeconfig", base / "ks-installer.pid", base / "logs" / "ks-installer.log"


def _ensure_cc(api: client.ApiClient, *, monitoring: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    body["spec"]["monitoring"]["enabled"] = body["spec"]["monitoring"]["enabled"] and monitoring
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    core = client.CoreV1Api(api)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    custom = client.CustomObjectsApi(api)
    try:
        obj: dict[str, Any] = custom.get_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, ns, PLURAL, name
        )
        print(f"[platform] ClusterConfiguration {ns}/{name} exists; keeping its spec")
        return obj
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    changed = "" if monitoring else " (monitoring off)"
    print(
        f"[platform] creating ClusterConfiguration {ns}/{name} from {SAMPLE.relative_to(REPO_ROOT)}{changed}"
    )
    created: dict[str, Any] = custom.create_namespaced_custom_object(  # type: ignore[assignment]
        GROUP, VERSION, ns, PLURAL, body
    )
    return created


def _start_operator(kubeconfig: Path, pidfile: Path, log: Path) -> int:
    pid = pidfile_pid(pidfile)
    if pid:
        print(f"[platform] ks-installer already running (pid {pid})")
        return pid
    cmd = [
        sys.executable, "-m", "installer.cli", "--kubeconfig", str(kubeconfig), "run",
        "--listen", "127.0.0.1:18080",
    ]  # fmt: skip
    pid = spawn(cmd, log, cwd=REPO_ROOT)
    pidfile.write_text(str(pid))
    print(f"[platform] started ks-installer (pid {pid}), log: {log}")
    return pid


def _wait_ready(
    api: client.ApiClient, log: Path | str, alive: Callable[[], bool], timeout: float
) -> dict[str, Any]:
    custom = client.CustomObjectsApi(api)
    body = yaml.safe_load(SAMPLE.read_text())
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"ks-installer exited; log: {log}")
        cc: dict[str, Any] = custom.get_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, ns, PLURAL, name
        )
        status = cc.get("status") or {}
        conds = {c["type"]: c for c in status.get("conditions") or []}
        ready = conds.get("Ready", {})
        summary = f"{status.get('summary', '')} {ready.get('reason', '')}".strip()
        if summary != last:
            print(f"[platform] {summary or 'waiting for the operator'}")
            last = summary
        if ready.get("status") == "True" and ready.get("observedGeneration") == cc["metadata"]["generation"]:
            return cc
        if conds.get("Degraded", {}).get("status") == "True":
            print(f"[platform] degraded: {conds['Degraded'].get('message', '')[:300]} (the operator retries)")
        time.sleep(2)
    raise RuntimeError(f"the platform was not Ready within {timeout:.0f}s; log: {log}")


def _banner(text: str) -> str:
    """The last Welcome banner in the operator's log (three rule lines frame it)."""
    rule = "#" * 78
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("###") and "Welcome" in line]
    if not starts:
        return ""
    out, rules = [rule], 0
    for line in lines[starts[-1] :]:
        out.append(line)
        rules += line == rule
        if rules == 2:
            break
    return "\n".join(out)


def up(timeout: float) -> int:
    kubeconfig, pidfile, log = _paths()
    with kube.api_client(kubeconfig) as api:
        kube.apply_crd(api, CRD)
        _ensure_cc(api)
        pid = _start_operator(kubeconfig, pidfile, log)
        try:
            _wait_ready(api, log, lambda: pid_alive(pid), timeout)
            lines = backend.up(api, kubeconfig, state_dir().parent)
        except RuntimeError as exc:
            print(f"[platform] ERROR: {exc}", file=sys.stderr)
            return 1
    print(_banner(log.read_text(errors="replace")))
    for line in lines:
        print(f"[platform] {line}")
    print(f"[platform] operator log:  {log}")
    print(f"[platform] status:        .venv/bin/ks-installer --kubeconfig {kubeconfig} status")
    bindir = REPO_ROOT / ".local" / "bin"
    print(f'[platform] kubectl:       export KUBECONFIG={kubeconfig} PATH="{bindir}:$PATH"')
    return 0


def _operator_log(api: client.ApiClient) -> str:
    """The leader's log (the Welcome banner), as `kubectl logs` reads it through kubelet."""
    core = client.CoreV1Api(api)
    lease = client.CoordinationV1Api(api).read_namespaced_lease("ks-installer", realpods.SYSTEM_NS)
    holder = lease.spec.holder_identity if lease.spec else None
    if not holder:
        return ""
    text: str = core.read_namespaced_pod_log(holder, realpods.SYSTEM_NS, container="installer")
    return text


def up_real(timeout: float) -> int:
    """The operator and the backend as pods on the real node (the cluster runs with KS_REAL_NODE=1)."""
    kubeconfig, _, _ = _paths()
    cluster = LocalCluster()
    if not cluster.real_node.running():
        print(
            "[platform] ERROR: the real node is not running (KS_REAL_NODE=1 make cluster-up)", file=sys.stderr
        )
        return 1
    down()  # the out-of-cluster operator and backend of `make up` would compete with the pods
    cluster.real_node.load_images()
    kubectl = ensure_binaries()["kubectl"]
    operator_log = "kubectl -n kubesphere-system logs deploy/ks-installer"
    with kube.api_client(kubeconfig) as api:
        try:
            realpods.apply_operator(kubectl, kubeconfig)
            cc = _ensure_cc(api, monitoring=False)
            if (cc["spec"].get("monitoring") or {}).get("enabled", True):
                off = '[{"op": "replace", "path": "/spec/monitoring/enabled", "value": false}]'
                raise RuntimeError(
                    "the ClusterConfiguration enables monitoring, whose node-exporter cannot run on the "
                    "real node (no registry); switch it off with "
                    f"kubectl patch -nkubesphere-system cc ks-installer --type=json -p='{off}'"
                )
            print("[platform] waiting for the operator pods on real-node-0")
            realpods.wait_available(api, "ks-installer", timeout=300)
            _wait_ready(api, operator_log, lambda: True, timeout)
            names = realpods.apply_backends(api)
            for name in names:
                realpods.wait_available(api, name, timeout=300)
            url = realpods.apiserver_url(api)
            login = backend._admin_login(api, url, 120)
        except RuntimeError as exc:
            print(f"[platform] ERROR: {exc}", file=sys.stderr)
            return 1
        print(_banner(_operator_log(api)))
    print(f"[platform] operator:              pods of deploy/ks-installer on real-node-0 ({operator_log})")
    print(f"[platform] ks-apiserver:          {url}  (pod {names[0]} on real-node-0)")
    print(f"[platform]   {login}")
    print(f"[platform] ks-controller-manager: pod {names[1]} on real-node-0")
    bindir = REPO_ROOT / ".local" / "bin"
    print(f'[platform] kubectl:       export KUBECONFIG={kubeconfig} PATH="{bindir}:$PATH"')
    return 0


def down() -> int:
    backend.down(state_dir().parent)
    _, pidfile, _ = _paths()
    pid = stop_pidfile(pidfile, grace=60)
    if pid:
        print(f"[platform] stopped ks-installer (pid {pid})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster.platform")
    parser.add_argument("command", choices=("up", "up-real", "down"))
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    if args.command == "up-real":
        return up_real(args.timeout)
    return up(args.timeout) if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
