"""Benchmark of the installer with the real roles (``make bench-installer``).

In one run, each on a fresh local cluster of its own (own state dir and ports):

* **full install**: the operator installs every supported component (core, redis with
  HA, openldap, minio, jenkins, devops, monitoring) from one ClusterConfiguration;
  wall time from its creation until Ready for its generation, and the operator's peak
  RSS (VmHWM) over it.  Every batch the roles applied is recorded ($KS_APPLY_RECORD), with
  its component and seconds: ``component_breakdown`` splits each run into its apply batches
  (API calls and waits) and the rest (process, loading, task starts, other tasks).
* **floor**: on a second fresh cluster, the recorded objects applied server-side in one
  process, batch by batch in the same order, with the same readiness waits (the roles'
  rules, polled every 0.1 s).  The install is reported as a ratio to it.
* **one-component toggle**: monitoring switched off, then on; patch to Disabled and to
  Enabled.
* **no-op reconcile**: the operator restarted on the Ready ClusterConfiguration; wall time
  from process start until it reports nothing to do, and the writes it made.
* **plan of a devops toggle**: ``ks-installer plan -o json`` for a JSON patch that flips
  ``spec.devops.enabled`` (components, reasons and every object's dry run, nothing
  changed), with the operator of the no-op reconcile running; wall time, reported as a
  ratio to that no-op reconcile, and whether the ClusterConfiguration stayed as it was.
* **per-task overhead**: an empty play, then N separate tasks each applying one
  ConfigMap with ``kubernetes.core.k8s`` and with ``kubesphere.installer.apply``:
  (play - empty play) / N for each.

Writes ``bench/results/installer.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from ansible_collections.kubesphere.installer.plugins.module_utils.batch import not_ready
from kubernetes import client, dynamic
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from bench import write_result
from devcluster import kube
from devcluster.build import ensure_binaries
from devcluster.cluster import ClusterInfo, LocalCluster
from devcluster.processes import free_port

REPO = Path(__file__).resolve().parent.parent
CRD = REPO / "deploy" / "crds" / "installer.kubesphere.io_clusterconfigurations.yaml"
SAMPLE = REPO / "deploy" / "cluster-configuration.yaml"
GROUP, VERSION, PLURAL = "installer.kubesphere.io", "v1alpha1", "clusterconfigurations"
NS, NAME = "kubesphere-system", "ks-installer"
TASKS = 10


def full_spec() -> dict[str, Any]:
    """The sample ClusterConfiguration with every component the installer supports switched on."""
    body: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    spec = body["spec"]
    spec["common"]["redis"].update(enabled=True, enableHA=True)
    spec["common"]["openldap"]["enabled"] = True
    spec["devops"]["enabled"] = True
    spec["monitoring"]["enabled"] = True
    return body


def _wait(check: Callable[[], Any], what: str, timeout: float = 900, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(what)


def _vm_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _writes(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        k: float(v)
        for k, v in re.findall(r'^ks_installer_api_writes_total\{kind="(\w+)"\} (\S+)$', text, re.M)
    }


class Operator:
    """The operator as ``make up`` runs it (out of cluster), on one bench cluster."""

    def __init__(self, info: ClusterInfo, log: Path, record: Path) -> None:
        self.info, self.log, self.record = info, log, record
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> float:
        self.port = free_port()
        env = dict(os.environ, KS_APPLY_RECORD=str(self.record))
        cmd = [sys.executable, "-m", "installer.cli", "--kubeconfig", str(self.info.kubeconfig), "run",
               "--listen", f"127.0.0.1:{self.port}", "--no-leader-election"]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        return time.monotonic()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _cc(custom: client.CustomObjectsApi) -> dict[str, Any]:
    obj: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, NAME)
    return obj


def _ready(custom: client.CustomObjectsApi) -> bool:
    cc = _cc(custom)
    conds = {c["type"]: c for c in (cc.get("status") or {}).get("conditions") or []}
    r = conds.get("Ready", {})
    return r.get("status") == "True" and r.get("observedGeneration") == cc["metadata"]["generation"]


def _state(custom: client.CustomObjectsApi, component: str) -> str:
    return str(
        ((_cc(custom).get("status") or {}).get("components") or {}).get(component, {}).get("state", "")
    )


def _patch(kubectl: Path, kubeconfig: Path, patch: list[dict[str, Any]]) -> None:
    subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", "patch", "-n", NS, "cc", NAME,
                    "--type=json", "-p", json.dumps(patch)], check=True, capture_output=True)  # fmt: skip


def measure_operator(info: ClusterInfo, work: Path) -> dict[str, Any]:
    kubectl = ensure_binaries()["kubectl"]
    api = kube.api_client(info.kubeconfig)
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    kube.apply_crd(api, CRD)
    core.create_namespace({"metadata": {"name": NS}})
    op = Operator(info, work / "operator.log", work / "record.jsonl")
    out: dict[str, Any] = {}
    try:
        op.start()
        assert op.proc is not None
        time.sleep(2)  # the operator is up and watching before the CR arrives
        t0 = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, full_spec())
        _wait(lambda: _ready(custom), "full install")
        out["full_install_seconds"] = round(time.monotonic() - t0, 2)
        out["operator_peak_rss_mib"] = round(_vm_hwm(op.proc.pid), 1)
        status = _cc(custom)["status"]["components"]
        out["component_run_seconds"] = {c: s.get("lastRunSeconds") for c, s in sorted(status.items())}
        out["component_breakdown"] = breakdown(status, op.record.read_text().splitlines())

        # One-component toggle: monitoring off, then on again.
        for value, want, key in (
            (False, "Disabled", "toggle_off_seconds"),
            (True, "Enabled", "toggle_on_seconds"),
        ):
            t0 = time.monotonic()
            _patch(
                kubectl,
                info.kubeconfig,
                [{"op": "replace", "path": "/spec/monitoring/enabled", "value": value}],
            )
            _wait(lambda w=want: _state(custom, "monitoring") == w and _ready(custom), key)  # type: ignore[misc]
            out[key] = round(time.monotonic() - t0, 2)
        out["toggle_component"] = "monitoring"

        # No-op reconcile: restart on the Ready ClusterConfiguration.
        op.stop()
        rv = _cc(custom)["metadata"]["resourceVersion"]
        offset = op.log.stat().st_size
        t0 = op.start()
        _wait(lambda: "nothing to do" in op.log.read_text()[offset:], "no-op reconcile", every=0.05)
        out["noop_reconcile_seconds"] = round(time.monotonic() - t0, 2)
        time.sleep(2)
        writes = _writes(op.port)
        out["noop_status_or_event_writes"] = writes.get("status", 0) + writes.get("event", 0)
        out["noop_resource_version_unchanged"] = rv == _cc(custom)["metadata"]["resourceVersion"]
        out.update(measure_plan(info, _cc(custom)))
        out["plan_vs_noop_reconcile_ratio"] = round(
            out["plan_devops_toggle_seconds"] / out["noop_reconcile_seconds"], 2
        )
    finally:
        op.stop()
        api.close()
    return out


def breakdown(status: dict[str, Any], record: list[str]) -> dict[str, dict[str, float]]:
    """Each component's run: tasks started, seconds in its apply batches (API calls and waits, as
    the record says) and the rest (process start, playbook and role loading, every other task's
    start and its own work, the record of what was applied)."""
    applied: dict[str, float] = {}
    batches: dict[str, int] = {}
    for line in record:
        batch = json.loads(line)
        name = batch.get("component") or "?"
        applied[name] = applied.get(name, 0.0) + float(batch.get("seconds") or 0.0)
        batches[name] = batches.get(name, 0) + 1
    out = {}
    for name, st in sorted(status.items()):
        run = float(st.get("lastRunSeconds") or 0.0)
        out[name] = {
            "run_seconds": run,
            "tasks": int((st.get("tasks") or {}).get("done") or 0),
            "apply_batches": batches.get(name, 0),
            "apply_and_wait_seconds": round(applied.get(name, 0.0), 2),
            "other_seconds": round(run - applied.get(name, 0.0), 2),
        }
    return out


def measure_plan(info: ClusterInfo, cc: dict[str, Any]) -> dict[str, Any]:
    """``ks-installer plan`` for a flip of devops.enabled: wall time, what it lists, nothing changed."""
    value = not ((cc.get("spec") or {}).get("devops") or {}).get("enabled", False)
    ops = json.dumps([{"op": "replace", "path": "/spec/devops/enabled", "value": value}])
    cmd = [sys.executable, "-m", "installer.cli", "--kubeconfig", str(info.kubeconfig), "-n", NS,
           "--name", NAME, "plan", "-p", ops, "-o", "json"]  # fmt: skip
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    seconds = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"ks-installer plan exited {done.returncode}: {done.stderr[-2000:]}")
    plan = json.loads(done.stdout)
    custom = client.CustomObjectsApi(kube.api_client(info.kubeconfig))
    return {
        "plan_devops_toggle": f"spec.devops.enabled -> {str(value).lower()}",
        "plan_devops_toggle_seconds": round(seconds, 2),
        "plan_components": {c["name"]: c["action"] for c in plan["components"]},
        "plan_objects": sum(len(c["objects"]) for c in plan["components"]),
        "plan_resource_version_unchanged": cc["metadata"]["resourceVersion"]
        == _cc(custom)["metadata"]["resourceVersion"],
    }


def _record(path: Path) -> list[dict[str, Any]]:
    """The install's batches, in order, as the first apply of each object made them."""
    seen: set[tuple[str, str, str, str]] = set()
    batches = []
    for line in path.read_text().splitlines():
        batch = json.loads(line)
        if batch["state"] != "present":
            continue
        fresh = []
        for obj in batch["objects"]:
            meta = obj.get("metadata") or {}
            key = (obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])
            if key not in seen:
                seen.add(key)
                fresh.append(obj)
        if fresh:
            batches.append({**batch, "objects": fresh})
    return batches


def measure_floor(info: ClusterInfo, batches: list[dict[str, Any]]) -> dict[str, Any]:
    """The same objects, server-side applied in one process, with the same waits."""
    api = kube.api_client(info.kubeconfig)
    dyn = dynamic.DynamicClient(api)

    def resource(obj: dict[str, Any]) -> Any:
        try:
            return dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except ResourceNotFoundError:
            dyn.resources.invalidate_cache()
            return _wait(lambda: _served(obj), f"{obj['kind']} served", every=0.1)

    def _served(obj: dict[str, Any]) -> Any:
        try:
            return dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except ResourceNotFoundError:
            dyn.resources.invalidate_cache()
            return None

    objects = 0
    t0 = time.monotonic()
    try:
        for batch in batches:
            for obj in batch["objects"]:
                res = resource(obj)
                meta = obj["metadata"]
                dyn.server_side_apply(res, body=obj, name=meta["name"], namespace=meta.get("namespace"),
                                      field_manager="floor", force_conflicts=True)  # fmt: skip
                objects += 1
            if batch["wait"]:
                for obj in batch["objects"]:
                    res, meta = resource(obj), obj["metadata"]

                    def ready(
                        res: Any = res, meta: dict[str, Any] = meta, cond: Any = batch["wait_condition"]
                    ) -> bool:
                        live = dyn.get(res, name=meta["name"], namespace=meta.get("namespace")).to_dict()
                        return not_ready(live, cond) is None

                    _wait(ready, f"{obj['kind']} {meta['name']} ready", every=0.1)
        seconds = time.monotonic() - t0
    finally:
        api.close()
    return {"floor_seconds": round(seconds, 2), "floor_objects": objects, "floor_batches": len(batches)}


def _play(work: Path, kubeconfig: Path, module: str, n: int) -> float:
    """Wall time of ansible-playbook running ``n`` separate tasks of ``module`` (0: an empty play)."""
    tasks = []
    for i in range(n):
        args: dict[str, Any] = {"definition": {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": f"bench-{module.replace('.', '-')}-{i}",
                                                            "namespace": "default"},
                                               "data": {"i": str(i)}}}  # fmt: skip
        if module == "kubernetes.core.k8s":
            args["apply"] = True
        tasks.append({"name": f"task {i}", module: args})
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": tasks or [{"name": "nothing", "ansible.builtin.meta": "noop"}],
            "module_defaults": {"group/kubesphere.installer.k8s": {"kubeconfig": str(kubeconfig)}},
        }
    ]
    path = work / f"play-{module}-{n}.yml"
    path.write_text(yaml.safe_dump(play))
    exe = Path(sys.executable).with_name("ansible-playbook")
    t0 = time.monotonic()
    cmd = [
        str(exe),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        str(path),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"{path.name} failed:\n{done.stdout[-2000:]}")
    return time.monotonic() - t0


def measure_task_overhead(info: ClusterInfo, work: Path) -> dict[str, Any]:
    empty = min(_play(work, info.kubeconfig, "none", 0) for _ in range(2))
    out: dict[str, Any] = {"empty_play_seconds": round(empty, 2), "tasks_per_play": TASKS}
    for module, key in (
        ("kubernetes.core.k8s", "kubernetes_core_k8s"),
        ("kubesphere.installer.apply", "batch_apply"),
    ):
        best = min(_play(work, info.kubeconfig, module, TASKS) for _ in range(2))
        out[f"{key}_per_task_seconds"] = round((best - empty) / TASKS, 3)
    out["per_task_overhead_ratio"] = round(
        out["kubernetes_core_k8s_per_task_seconds"] / out["batch_apply_per_task_seconds"], 1
    )
    return out


def _fresh_cluster(work: Path, name: str) -> tuple[LocalCluster, ClusterInfo]:
    cluster = LocalCluster(state=work / name)
    return cluster, cluster.up(log=False, real_node=False)


def run() -> dict[str, Any]:
    ensure_binaries()
    work = Path(tempfile.mkdtemp(prefix="ks-bench-installer-"))
    result: dict[str, Any] = {
        "benchmark": "installer",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count()},
        "components": ["core", "redis (HA)", "openldap", "minio", "jenkins", "devops", "monitoring"],
    }
    try:
        cluster, info = _fresh_cluster(work, "install")
        try:
            result.update(measure_task_overhead(info, work))
            result.update(measure_operator(info, work))
        finally:
            cluster.down()
        batches = _record(work / "record.jsonl")
        cluster, info = _fresh_cluster(work, "floor")
        try:
            kube.apply_crd(kube.api_client(info.kubeconfig), CRD)
            result.update(measure_floor(info, batches))
        finally:
            cluster.down()
        result["install_vs_floor_ratio"] = round(result["full_install_seconds"] / result["floor_seconds"], 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> None:
    write_result("installer", run())


if __name__ == "__main__":
    main()
