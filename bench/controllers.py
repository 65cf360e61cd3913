"""Benchmark of ks-controller-manager (``make bench-controllers``).

On the local cluster, with the manager running as its own process (no LDAP,
leader election on a Lease of its own), in one run:

* **1,000 users at once**: from the first create until every User is
  ``Active`` with a bcrypt hash.  bcrypt (cost 10) dominates, so the floor is
  1,000 hashes computed in this process, on as many threads as the machine has
  cores, before and after the users (the faster counts: the machine may be
  shared, so the 1-minute load average at start and end is recorded too); the
  ratio to that floor is the controller's overhead.
* **500 namespaces into one workspace**: from the first create until every
  namespace has its Workspace ownerReference and the Roles admin, operator
  and viewer.
* **resident memory** of the manager: peak (VmHWM) over the run, and at the end.

Everything the run creates is deleted afterwards.  Writes ``bench/results/controllers.json``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bcrypt

from bench import write_result
from devcluster import kube
from devcluster.build import ensure_binaries
from devcluster.cluster import LocalCluster
from tests.conftest import CORE_FILES
from tests.controllers.support import Manager, Objects, strip_all_finalizers

USERS = 1000
NAMESPACES = 500
PASSWORD = "P@88w0rdBench1"
IAM = "iam.kubesphere.io/v1alpha2"


def _wait(check: Callable[[], bool], what: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(what)


def _vm(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _hashes(count: int, threads: int) -> float:
    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)), range(count)))
    return time.monotonic() - t0


def _apply_platform(api: Any) -> None:
    import yaml
    from kubernetes import dynamic

    for path in sorted((CORE_FILES / "crds").glob("*.yaml")):
        kube.apply_crd(api, path)
    dyn = dynamic.DynamicClient(api)
    for path in sorted((CORE_FILES / "iam").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                res = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
                res.server_side_apply(body=doc, field_manager="ks-bench", force_conflicts=True)


def run() -> dict[str, Any]:
    ensure_binaries()
    info = LocalCluster().up(log=False)
    api = kube.api_client(info.kubeconfig)
    _apply_platform(api)
    run_id = uuid.uuid4().hex[:6]
    label = f"ks-bench={run_id}"
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"ks-bench-controllers-{run_id}"
    work.mkdir(parents=True, exist_ok=True)
    objects = Objects(api)
    manager = Manager(kubeconfig=info.kubeconfig, log=work / "manager.log", lease=f"ks-bench-{run_id}")
    cores = os.cpu_count() or 1
    result: dict[str, Any] = {"benchmark": "controllers", "machine": {"cpus": cores}}
    try:
        manager.start()
        assert manager.proc is not None
        pid = manager.proc.pid

        # Baseline, while the manager idles: the same hashes in this process, before and after the
        # users (the machine may be shared); the faster of the two is the floor.
        result["load_average_start"] = round(os.getloadavg()[0], 2)
        result["bcrypt_1000_threads"] = cores
        before = _hashes(USERS, cores)

        names = [f"bench-{run_id}-{i:04d}" for i in range(USERS)]
        pool = ThreadPoolExecutor(16)
        t0 = time.monotonic()
        list(
            pool.map(
                lambda n: objects.create(
                    {
                        "apiVersion": IAM,
                        "kind": "User",
                        "metadata": {"name": n, "labels": {"ks-bench": run_id}},
                        "spec": {"email": f"{n}@example.com", "password": PASSWORD},
                    }
                ),
                names,
            )
        )
        created = time.monotonic() - t0

        def users_active() -> bool:
            items = objects.list(IAM, "User", labels=label)
            return len(items) == USERS and all(
                (u.get("status") or {}).get("state") == "Active" and u["spec"]["password"].startswith("$2")
                for u in items
            )

        _wait(users_active, "1000 users Active")
        users_seconds = time.monotonic() - t0
        after = _hashes(USERS, cores)
        result["bcrypt_1000_seconds_before"] = round(before, 2)
        result["bcrypt_1000_seconds_after"] = round(after, 2)
        result["bcrypt_1000_seconds"] = round(min(before, after), 2)
        result["users"] = USERS
        result["users_create_requests_seconds"] = round(created, 2)
        result["users_all_active_seconds"] = round(users_seconds, 2)
        result["users_vs_bcrypt_floor_ratio"] = round(users_seconds / result["bcrypt_1000_seconds"], 2)
        result["users_per_second"] = round(USERS / users_seconds, 1)

        ws = f"bench-{run_id}"
        objects.create(
            {
                "apiVersion": "tenant.kubesphere.io/v1alpha2",
                "kind": "WorkspaceTemplate",
                "metadata": {"name": ws},
                "spec": {"template": {"spec": {"manager": names[0]}}},
            }
        )
        _wait(lambda: objects.get("tenant.kubesphere.io/v1alpha1", "Workspace", ws) is not None, "workspace")
        ns_names = [f"bench-{run_id}-{i:03d}" for i in range(NAMESPACES)]
        t0 = time.monotonic()
        list(
            pool.map(
                lambda n: objects.create(
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {
                            "name": n,
                            "labels": {"ks-bench": run_id, "kubesphere.io/workspace": ws},
                        },
                    }
                ),
                ns_names,
            )
        )

        def namespaces_converged() -> bool:
            items = objects.list("v1", "Namespace", labels=label)
            owned = {
                n["metadata"]["name"]
                for n in items
                if any(
                    o["kind"] == "Workspace" and o["name"] == ws
                    for o in n["metadata"].get("ownerReferences") or []
                )
            }
            if len(owned) < NAMESPACES:
                return False
            roles: dict[str, set[str]] = {}
            for r in objects.list("rbac.authorization.k8s.io/v1", "Role"):
                roles.setdefault(r["metadata"]["namespace"], set()).add(r["metadata"]["name"])
            return all({"admin", "operator", "viewer"} <= roles.get(n, set()) for n in owned)

        _wait(namespaces_converged, "500 namespaces converged")
        ns_seconds = time.monotonic() - t0
        result["namespaces"] = NAMESPACES
        result["namespaces_converged_seconds"] = round(ns_seconds, 2)
        result["namespaces_per_second"] = round(NAMESPACES / ns_seconds, 1)
        result["manager_peak_rss_mib"] = round(_vm(pid, "VmHWM"), 1)
        result["manager_rss_end_mib"] = round(_vm(pid, "VmRSS"), 1)
        result["manager_api_requests"] = int(manager.metric("ks_controller_api_requests_total"))
        result["load_average_end"] = round(os.getloadavg()[0], 2)
        pool.shutdown()
    finally:
        t0 = time.monotonic()
        objects.cleanup(grace=300)
        result["cleanup_seconds"] = round(time.monotonic() - t0, 1)
        manager.stop()
        strip_all_finalizers(api)
        objects.delete("coordination.k8s.io/v1", "Lease", f"ks-bench-{run_id}", "default")
        api.close()
    result["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return result


def main() -> None:
    write_result("controllers", run())


if __name__ == "__main__":
    main()
