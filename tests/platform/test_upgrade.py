"""An upgrade from the last release: v0.1.0 installs the platform, this version takes over.

The release's files (``releases/v0.1.0.tar.xz``: ``git archive v0.1.0``, kept here so a clone
without tags or history has them too; its header names the commit) install the sample with redis
through its own
operator and roles, with one deliberate difference in its redis role: a Service
``redis-legacy`` that this version does not render (a rename, as upgrades bring). Then this
version's CRD and operator take over the same cluster and ClusterConfiguration, as a user
upgrading does. v0.1.0 kept no records of what it applied, so this version adopts what
carries each component's labels and prunes what it no longer renders.

Runs in kubesphere-system and removes everything at the end, like tests/platform/test_platform.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devcluster import kube
from devcluster.services import free_port
from installer import __version__
from tests.conftest import Cluster
from tests.helpers import kubectl, uninstall_platform, wait_for
from tests.installer.conftest import Operator, condition
from tests.roles.support import exists

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
RELEASE = "v0.1.0"
ARCHIVE = Path(__file__).with_name("releases") / f"{RELEASE}.tar.xz"
NS = "kubesphere-system"
NAMESPACES = (NS, "kubesphere-monitoring-system")
GROUP, VERSION, PLURAL = "installer.kubesphere.io", "v1alpha1", "clusterconfigurations"
CRD = Path("deploy") / "crds" / "installer.kubesphere.io_clusterconfigurations.yaml"
LEGACY = """
---
apiVersion: v1
kind: Service
metadata:
  name: redis-legacy
  namespace: {{ redis_namespace }}
  labels: {{ redis_labels | to_json }}
spec:
  selector: {app.kubernetes.io/name: redis}
  ports: [{name: redis, port: 6379}]
"""


def release_tree(into: Path) -> Path:
    """The release's files (no checkout of ours changes), with the deliberate rename."""
    with tarfile.open(ARCHIVE) as tar:
        assert re.fullmatch(r"[0-9a-f]{40}", tar.pax_headers.get("comment", "")), "not a git archive"
        tar.extractall(into, filter="data")
    with (into / "roles" / "redis" / "templates" / "service.yaml.j2").open("a") as fh:
        fh.write(LEGACY)
    return into


def get_cc(cluster: Cluster) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "ks-installer"
    )
    return obj


def ready(cluster: Cluster, *, timeout: float, version: str) -> dict[str, Any]:
    """The CR once Ready at its generation, in a status the installer of ``version`` wrote."""

    def check() -> dict[str, Any] | None:
        cc = get_cc(cluster)
        cond = condition(cc, "Ready")
        if (
            cond.get("status") == "True"
            and cond.get("observedGeneration") == cc["metadata"]["generation"]
            and (cc.get("status") or {}).get("installerVersion") == version
        ):
            return cc
        return None

    return wait_for(check, timeout=timeout, what="the platform to be Ready", interval=1)


def kept_state(cluster: Cluster) -> dict[str, Any]:
    """What an upgrade must not change: every PVC (identity, size, class) and every Secret of ours
    (identity, and the value of every key it had)."""
    core = client.CoreV1Api(cluster.api)
    state: dict[str, Any] = {}
    ours = "app.kubernetes.io/managed-by=ks-installer"
    for ns in NAMESPACES:
        for pvc in core.list_namespaced_persistent_volume_claim(ns).items:
            spec = pvc.spec
            state[f"pvc {ns}/{pvc.metadata.name}"] = (pvc.metadata.uid, spec.resources.requests,
                                                      spec.storage_class_name)  # fmt: skip
        for secret in core.list_namespaced_secret(ns, label_selector=ours).items:
            state[f"secret {ns}/{secret.metadata.name}"] = (secret.metadata.uid, secret.data or {})
    return state


def unchanged(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed from ``before``; a Secret may gain keys a newer version generates."""
    changed = []
    for key, (uid, *rest) in before.items():
        now = after.get(key)
        if now is None or now[0] != uid:
            changed.append(f"{key}: gone or re-created")
        elif key.startswith("secret "):
            changed.extend(f"{key}: {k} changed" for k, v in rest[0].items() if now[1].get(k) != v)
        elif list(now[1:]) != rest:
            changed.append(f"{key}: {rest} -> {list(now[1:])}")
    return changed


def records(cluster: Cluster) -> list[client.V1ConfigMap]:
    found: list[client.V1ConfigMap] = (
        client.CoreV1Api(cluster.api)
        .list_namespaced_config_map(NS, label_selector="installer.kubesphere.io/inventory")
        .items
    )
    return found


def service_exists(cluster: Cluster, name: str) -> bool:
    return exists(client.CoreV1Api(cluster.api).read_namespaced_service, name, NS)


@pytest.fixture(scope="module")
def released(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The release's tree and a scratch directory; everything installed is removed at the end."""
    tree = release_tree(tmp_path_factory.mktemp("release"))
    scratch = tmp_path_factory.mktemp("upgrade")
    try:
        yield tree, scratch
    finally:
        uninstall_platform(cluster.kubectl, cluster.kubeconfig, NS)


def operator(cluster: Cluster, tree: Path, log: Path, work: Path) -> subprocess.Popen[bytes]:
    """``ks-installer run`` of the code in ``tree`` (its own package, playbooks and roles)."""
    env = dict(os.environ, PYTHONPATH=str(tree), KS_INSTALLER_WORK_DIR=str(work),
               KS_INSTALLER_BACKOFF_BASE="2", KS_INSTALLER_BACKOFF_CAP="20")  # fmt: skip
    cmd = [sys.executable, "-m", "installer.cli", "--kubeconfig", str(cluster.kubeconfig), "-n", NS,
           "run", "--listen", f"127.0.0.1:{free_port()}"]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tree)


def stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    sys.stderr.write(f"\n---- {log.name} (tail) ----\n{log.read_text(errors='replace')[-3000:]}\n")


def test_the_current_operator_takes_over_an_install_of_the_last_release(
    cluster: Cluster, released: tuple[Path, Path]
) -> None:
    tree, scratch = released
    # v0.1.0, as its users installed it: its CRD, the sample with redis on, its operator.
    kube.apply_crd(cluster.api, tree / CRD)
    kubectl(cluster.kubectl, cluster.kubeconfig, "create", "namespace", NS, check=False)
    cr = yaml.safe_load((tree / "deploy" / "cluster-configuration.yaml").read_text())
    cr["spec"]["common"]["redis"]["enabled"] = True
    client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, cr)
    old_log = scratch / "operator-v0.1.0.log"
    old = operator(cluster, tree, old_log, scratch / "runs-old")
    try:
        before = ready(cluster, timeout=1500, version=RELEASE.lstrip("v"))
    finally:
        stop(old, old_log)
    assert before["status"]["core"]["version"] == RELEASE
    assert service_exists(cluster, "redis-legacy")
    assert not records(cluster)  # the release kept no records
    components = sorted(before["status"]["components"])
    kept = kept_state(cluster)
    assert any(k.startswith("pvc ") for k in kept) and f"secret {NS}/redis-secret" in kept

    # This version: its CRD (kubectl apply -f deploy/crds), then its operator on the same CR.
    kube.apply_crd(cluster.api, REPO / CRD)
    new_log = scratch / "operator-current.log"
    new = Operator(cluster, NS, new_log, dict(os.environ, KS_INSTALLER_WORK_DIR=str(scratch / "runs-new")),
                   [], table=None).start()  # fmt: skip
    try:
        after = ready(cluster, timeout=900, version=__version__)
    finally:
        new.stop()
    log = new.log()

    # The CR was never deleted, and the status describes its current generation at the new version.
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["status"]["observedGeneration"] == after["metadata"]["generation"]
    assert after["status"]["core"]["version"] == f"v{__version__}" != RELEASE
    assert sorted(after["status"]["components"]) == components
    # Each component re-ran once (its digest covers the installer version), none was removed.
    runs = {name: len(re.findall(rf"\[{name}\] installing", log)) for name in components}
    assert runs == dict.fromkeys(components, 1), runs
    assert "uninstalling" not in log
    # The volumes and the credentials their data was initialised with are as they were.
    assert unchanged(kept, kept_state(cluster)) == []
    # What the release rendered and this version does not is gone; every component has a record.
    assert not service_exists(cluster, "redis-legacy")
    recorded = records(cluster)
    assert sorted(cm.metadata.labels["installer.kubesphere.io/inventory"] for cm in recorded) == components
    assert all("redis-legacy" not in cm.data["objects.json"] for cm in recorded)
