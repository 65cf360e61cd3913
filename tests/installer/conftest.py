"""Fixtures for operator tests: the ClusterConfiguration CRD, operator processes
(the real ``ks-installer run`` command, out of cluster) and CR helpers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devcluster import kube
from devcluster.processes import free_port
from tests.conftest import Cluster
from tests.helpers import kubectl, wait_for

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "deploy" / "crds" / "installer.kubesphere.io_clusterconfigurations.yaml"
TEST_TABLE = Path(__file__).with_name("components-test.yaml")
TEST_ROLES = Path(__file__).with_name("roles")
GROUP, VERSION, PLURAL = "installer.kubesphere.io", "v1alpha1", "clusterconfigurations"


def apply_crd(api: client.ApiClient, path: Path = CRD_FILE) -> None:
    name = kube.apply_crd(api, path)

    # A replaced schema reaches the API server's handler asynchronously: wait until it rejects
    # a value only the schema forbids (server-side dry run, nothing is stored).
    probe = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterConfiguration",
        "metadata": {"name": "schema-probe"},
        "spec": {"multicluster": {"clusterRole": "schema-probe"}},
    }

    def schema_live() -> bool:
        try:
            client.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP, VERSION, "default", PLURAL, probe, dry_run="All"
            )
        except client.ApiException as exc:
            return exc.status == 422
        return False

    wait_for(schema_live, what=f"the schema of {name} to be enforced")


@pytest.fixture(scope="session")
def cc_crd(cluster: Cluster) -> None:
    apply_crd(cluster.api)


class Operator:
    """One ``ks-installer run`` process against the local cluster."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        log: Path,
        env: dict[str, str],
        args: list[str],
        *,
        table: Path | None = TEST_TABLE,
    ) -> None:
        self.table = table
        self.cluster = cluster
        self.namespace = namespace
        self.log_path = log
        self.env = env
        self.args = args
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Operator:
        cmd = [
            sys.executable, "-m", "installer.cli", "--kubeconfig", str(self.cluster.kubeconfig),
            "-n", self.namespace, "run", "--listen", f"127.0.0.1:{self.port}", *self.args,
        ]  # fmt: skip
        if self.table:  # None: the default table and the project's own roles
            cmd += ["--component-table", str(self.table)]
        with self.log_path.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=REPO)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, text: str, *, timeout: float = 90, after: int = 0) -> int:
        """Wait until ``text`` appears in the log past offset ``after``; return its offset."""

        def found() -> int | None:
            idx = self.log().find(text, after)
            return idx + 1 if idx >= 0 else None

        return wait_for(found, timeout=timeout, what=f"{text!r} in the operator log") - 1

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def operators(
    cluster: Cluster, cc_crd: None, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Operator]]:
    """Factory of operator processes watching ``ks-installer`` in the test namespace."""
    started: list[Operator] = []

    def make(*args: str, **env_overrides: str) -> Operator:
        env = dict(os.environ)
        env.update(
            KS_INSTALLER_EXTRA_ROLES_PATHS=str(TEST_ROLES),
            KS_INSTALLER_BACKOFF_BASE="1",
            KS_INSTALLER_BACKOFF_CAP="4",
            KS_INSTALLER_LEASE_DURATION="4",
            KS_INSTALLER_LEASE_RENEW="1",
            KS_INSTALLER_PROGRESS_INTERVAL="0.5",
            KS_INSTALLER_WORK_DIR=str(tmp_path / "runs"),
        )
        env.update(env_overrides)
        op = Operator(cluster, namespace, tmp_path / f"operator-{len(started)}.log", env, list(args)).start()
        started.append(op)
        return op

    yield make
    for op in started:
        op.kill()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for op in started:
            sys.stderr.write(f"\n---- {op.log_path.name} ----\n{op.log()[-6000:]}\n")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


# -- the ClusterConfiguration ------------------------------------------------------------
def probe_spec(namespace: str, **components: dict[str, Any]) -> dict[str, Any]:
    """A spec for the probe table: each component gets its objects in ``namespace``."""
    return {"probe": {name: {"namespace": namespace, **opts} for name, opts in components.items()}}


def create_cc(cluster: Cluster, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterConfiguration",
        "metadata": {"name": "ks-installer", "namespace": namespace},
        "spec": spec,
    }
    obj: dict[str, Any] = client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    return obj


def get_cc(cluster: Cluster, namespace: str) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "ks-installer"
    )
    return obj


def patch_cc(cluster: Cluster, namespace: str, ops: list[dict[str, Any]], *, check: bool = True) -> Any:
    """Patch the CR the way users do: ``kubectl patch -n<ns> cc ks-installer --type=json -p=...``."""
    return kubectl(
        cluster.kubectl, cluster.kubeconfig, "patch", f"-n{namespace}",
        "clusterconfigurations.installer.kubesphere.io", "ks-installer", "--type=json",
        f"-p={json.dumps(ops)}", check=check,
    )  # fmt: skip


def condition(cc: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (cc.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


def wait_ready(cluster: Cluster, namespace: str, *, timeout: float = 180) -> dict[str, Any]:
    """Wait until Ready=True for the CR's current generation."""

    def ready() -> dict[str, Any] | None:
        cc = get_cc(cluster, namespace)
        gen = cc["metadata"]["generation"]
        ok = condition(cc, "Ready")
        if ok.get("status") == "True" and ok.get("observedGeneration") == gen:
            return cc
        return None

    return wait_for(ready, timeout=timeout, what="the ClusterConfiguration to be Ready", interval=0.5)


def component(cc: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(((cc.get("status") or {}).get("components") or {}).get(name) or {})


def cc_events(cluster: Cluster, namespace: str) -> list[tuple[str, str]]:
    """(reason, message) of the Events about the CR, oldest first."""
    events = (
        client.CoreV1Api(cluster.api)
        .list_namespaced_event(namespace, field_selector="involvedObject.kind=ClusterConfiguration")
        .items
    )
    events.sort(
        key=lambda e: (e.first_timestamp or e.metadata.creation_timestamp, int(e.metadata.resource_version))
    )
    return [(e.reason, e.message) for e in events]


def probe_objects(cluster: Cluster, namespace: str, name: str) -> dict[str, int]:
    """How many ConfigMaps, Deployments and pods the probe role left for component ``name``."""
    selector = f"ks-probe/component={name}"
    core = client.CoreV1Api(cluster.api)
    apps = client.AppsV1Api(cluster.api)
    return {
        "configmaps": len(core.list_namespaced_config_map(namespace, label_selector=selector).items),
        "deployments": len(apps.list_namespaced_deployment(namespace, label_selector=selector).items),
        "pods": len(core.list_namespaced_pod(namespace, label_selector=f"app=probe-{name}").items),
    }


def wait_until(check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    return wait_for(check, timeout=timeout, what=what, interval=0.3)
