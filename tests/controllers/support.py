"""Running ks-controller-manager as a real process against the local cluster, for tests and benchmarks.

:class:`Manager` starts ``python -m controllers.cli`` with a kubesphere.yaml of
the caller's choosing, waits for ``/readyz``, and stops it (SIGTERM) or kills
it (SIGKILL).  :class:`Objects` creates cluster objects with unique names and
deletes them afterwards without hanging on finalizers (a manager that was
killed, or another helper's, may have left some).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, dynamic

from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]
#: Finalizers the manager puts on objects; stripped from everything once a test manager stops.
OUR_FINALIZERS = (
    "controllers.kubesphere.io/cleanup",
    "finalizers.kubesphere.io/users",
    "finalizers.kubesphere.io/namespaces",
    "finalizers.workspacetemplate.kubesphere.io",
    "finalizers.tenant.kubesphere.io",
    "devopsproject.finalizers.kubesphere.io",
    "finalizers.kubesphere.io/groupsbindings",
)


def write_config(
    path: Path,
    *,
    window: str = "20s",
    retention: str = "30s",
    max_entries: int = 12,
    ldap_host: str | None = None,
    manager_dn: str | None = None,
) -> Path:
    doc: dict[str, Any] = {
        "authentication": {
            "authenticateRateLimiterMaxTries": 10,
            "authenticateRateLimiterDuration": window,
            "loginHistoryRetentionPeriod": retention,
            "loginHistoryMaximumEntries": max_entries,
        }
    }
    if ldap_host:
        doc["ldap"] = {
            "host": ldap_host,
            "managerDN": manager_dn,
            "userSearchBase": "ou=Users,dc=kubesphere,dc=io",
            "groupSearchBase": "ou=Groups,dc=kubesphere,dc=io",
        }
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass
class Manager:
    kubeconfig: Path
    log: Path
    config: Path | None = None
    lease: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    identity: str = field(default_factory=lambda: f"t-{uuid.uuid4().hex[:6]}")
    proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True, timeout: float = 60) -> Manager:
        cmd = [
            sys.executable,
            "-m",
            "controllers.cli",
            "--kubeconfig",
            str(self.kubeconfig),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--identity",
            self.identity,
        ]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        if self.lease:
            cmd += [
                "--lease-name",
                self.lease,
                "--lease-namespace",
                "default",
                "--lease-duration",
                "4",
                "--lease-renew",
                "1",
            ]
        else:
            cmd.append("--no-leader-election")
        with self.log.open("ab") as out:
            out.write(f"\n===== start {' '.join(cmd)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **self.env}
            )
        if wait_ready:
            self.wait_ready(timeout=timeout)
        return self

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=3) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"ks-controller-manager exited with {self.proc.returncode}:\n{self.tail()}"
                )
            with contextlib.suppress(OSError):
                if self.get("/readyz")[0] == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"ks-controller-manager not ready within {timeout}s:\n{self.tail()}")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        _, text = self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
            if not m:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(m.group(2))
        return total

    def tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def strip_finalizers(api: client.ApiClient, obj: dict[str, Any]) -> None:
    """Remove the manager's finalizers from one object (by its apiVersion/kind/name)."""
    dyn = dynamic.DynamicClient(api)
    res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    meta = obj["metadata"]
    with contextlib.suppress(client.ApiException):
        live = res.get(name=meta["name"], namespace=meta.get("namespace")).to_dict()
        rest = [f for f in live["metadata"].get("finalizers") or [] if f not in OUR_FINALIZERS]
        if rest != (live["metadata"].get("finalizers") or []):
            res.patch(
                name=meta["name"],
                namespace=meta.get("namespace"),
                body={"metadata": {"finalizers": rest}},
                content_type="application/merge-patch+json",
            )


def strip_all_finalizers(api: client.ApiClient) -> None:
    """After a test manager stops: no object keeps a finalizer that nothing will remove."""
    dyn = dynamic.DynamicClient(api)
    for api_version, kind in (
        ("v1", "Namespace"),
        ("iam.kubesphere.io/v1alpha2", "User"),
        ("tenant.kubesphere.io/v1alpha2", "WorkspaceTemplate"),
        ("tenant.kubesphere.io/v1alpha1", "Workspace"),
        ("devops.kubesphere.io/v1alpha3", "DevOpsProject"),
        ("iam.kubesphere.io/v1alpha2", "GroupBinding"),
    ):
        res = dyn.resources.get(api_version=api_version, kind=kind)
        for item in res.get().to_dict().get("items") or []:
            if set(item["metadata"].get("finalizers") or []) & set(OUR_FINALIZERS):
                strip_finalizers(api, {**item, "apiVersion": api_version, "kind": kind})


class Objects:
    """Creates objects with the dynamic client and deletes them all at the end, finalizers or not."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.dyn = dynamic.DynamicClient(api)
        self.created: list[dict[str, Any]] = []

    def resource(self, api_version: str, kind: str) -> Any:
        return self.dyn.resources.get(api_version=api_version, kind=kind)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        res = self.resource(body["apiVersion"], body["kind"])
        made = res.create(body=body, namespace=body["metadata"].get("namespace")).to_dict()
        self.created.append(
            {
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
                "metadata": {
                    "name": made["metadata"]["name"],
                    "namespace": made["metadata"].get("namespace"),
                },
            }
        )
        return dict(made)

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        try:
            return dict(self.resource(api_version, kind).get(name=name, namespace=namespace).to_dict())
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(
        self, api_version: str, kind: str, *, labels: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        got = self.resource(api_version, kind).get(namespace=namespace, label_selector=labels)
        return list(got.to_dict().get("items") or [])

    def patch(
        self, api_version: str, kind: str, name: str, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        res = self.resource(api_version, kind)
        return dict(
            res.patch(
                name=name, namespace=namespace, body=body, content_type="application/merge-patch+json"
            ).to_dict()
        )

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        with contextlib.suppress(client.ApiException):
            self.resource(api_version, kind).delete(name=name, namespace=namespace)

    def cleanup(self, *, grace: float = 10.0) -> None:
        for obj in reversed(self.created):
            self.delete(
                obj["apiVersion"], obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")
            )
        deadline = time.monotonic() + grace
        for obj in reversed(self.created):
            meta = obj["metadata"]
            while self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace")) is not None:
                if time.monotonic() > deadline:
                    strip_finalizers(self.api, obj)
                    break
                time.sleep(0.2)
        self.created.clear()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
