"""Shared fixtures: the local control plane, Redis, OpenLDAP, API clients and throwaway namespaces.

Tests that need the cluster are marked ``cluster``; the session fixture starts
the local control plane or reuses a running one.  A cluster this session
started is stopped at the end unless ``KS_KEEP_CLUSTER=1``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client, dynamic

from devcluster import kube
from devcluster.build import ensure_binaries
from devcluster.cluster import LocalCluster
from tests.services import RedisServer, Slapd


@dataclass(frozen=True)
class Cluster:
    api: client.ApiClient
    kubeconfig: Path
    kubectl: Path
    server: str


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    local = LocalCluster()
    info = local.up()
    api = kube.api_client(info.kubeconfig)
    try:
        yield Cluster(
            api=api,
            kubeconfig=info.kubeconfig,
            kubectl=ensure_binaries()["kubectl"],
            server=info.server,
        )
    finally:
        api.close()
        if not info.reused and os.environ.get("KS_KEEP_CLUSTER") != "1":
            local.down()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace, deleted afterwards."""
    core = client.CoreV1Api(cluster.api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"ks-test": "true"}}})
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """Debian's redis-server on a free loopback port, with a password."""
    with RedisServer().start() as server:
        yield server


@pytest.fixture(scope="session")
def slapd() -> Iterator[Slapd]:
    """Debian's slapd on a free loopback port, holding dc=kubesphere,dc=io with ou=Users and ou=Groups."""
    with Slapd().start() as server:
        yield server


CORE_FILES = Path(__file__).resolve().parents[1] / "roles" / "ks_core" / "files"


@pytest.fixture(scope="session")
def platform_crds(cluster: Cluster) -> Cluster:
    """The platform's CRDs and built-in roles, as the core role applies them (idempotent).

    ``roles/ks_core/files/crds`` (iam, tenant, devops) and ``roles/ks_core/files/iam``
    (GlobalRoles, bindings, RoleBases, role templates) and ``iam-kept`` (cluster roles),
    server-side applied.
    """
    for path in sorted((CORE_FILES / "crds").glob("*.yaml")):
        kube.apply_crd(cluster.api, path)
    dyn = dynamic.DynamicClient(cluster.api)
    for path in sorted((CORE_FILES / "iam").glob("*.yaml")) + sorted(
        (CORE_FILES / "iam-kept").glob("*.yaml")
    ):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            resource.server_side_apply(body=doc, field_manager="ks-tests", force_conflicts=True)
    return cluster


# -- wall time per test folder, printed at the end of every run (CI reads it) -----------------------
_FOLDER_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    parts = report.nodeid.split("/")
    folder = "/".join(parts[:2]) if len(parts) > 2 else parts[0].split("::")[0]
    _FOLDER_SECONDS[folder] = _FOLDER_SECONDS.get(folder, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FOLDER_SECONDS:
        return
    terminalreporter.write_sep("-", "wall time per test folder (setup + call + teardown)")
    for folder, seconds in sorted(_FOLDER_SECONDS.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:8.1f}s  {folder}")
