"""The real node and one platform installed by the operator running as a pod on it.

The suite turns the real node on (``KS_REAL_NODE=1`` is the switch for the
cluster as a whole; here the fixture adds the node to the session's cluster)
and takes it away at the end unless it was running before, so the suites after
it see the KWOK cluster as always.  The project image is built (a layer-cache
hit once built) and imported into the node's containerd.

One platform install, shared by the tests: ``deploy/`` through the overlay
``devcluster/real-node`` (a node selector and a toleration added, nothing else)
and the sample ClusterConfiguration with monitoring off: node-exporter
tolerates every taint, so it lands on the real node and cannot pull an image
there (no registry), and the monitoring component would never be Ready.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devcluster import image, kube, realpods
from devcluster.cluster import LocalCluster
from devcluster.nodeconfig import NODE_NAME
from devcluster.realnode import RealNode
from tests.conftest import Cluster
from tests.helpers import kubectl, uninstall_platform
from tests.installer import conftest as installer_support

REPO = Path(__file__).resolve().parents[2]
NS = "kubesphere-system"
CRD = REPO / "deploy" / "crds" / "installer.kubesphere.io_clusterconfigurations.yaml"
SAMPLE = REPO / "deploy" / "cluster-configuration.yaml"


@pytest.fixture(scope="package")
def real_node(cluster: Cluster) -> Iterator[RealNode]:
    local = LocalCluster()
    was_running = local.real_node.running()
    image.build()
    local.up(real_node=True, log=False)
    local.real_node.load_images(say=lambda *_a: None)
    try:
        yield local.real_node
    finally:
        if not was_running and os.environ.get("KS_KEEP_CLUSTER") != "1":
            local.real_node.down(log=False)


def wait_ready(cluster: Cluster, timeout: float = 900) -> dict[str, Any]:
    """The platform's ClusterConfiguration Ready for its current generation (the shared rule)."""
    return installer_support.wait_ready(cluster, NS, timeout=timeout)


def operator_pods(cluster: Cluster) -> list[client.V1Pod]:
    pods = client.CoreV1Api(cluster.api).list_namespaced_pod(NS, label_selector="app=ks-installer").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def leader(cluster: Cluster) -> str:
    lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease("ks-installer", NS)
    return str(lease.spec.holder_identity or "")


def pod_log(cluster: Cluster, name: str, container: str) -> str:
    text: str = client.CoreV1Api(cluster.api).read_namespaced_pod_log(name, NS, container=container)
    return text


@dataclass(frozen=True)
class Platform:
    cluster: Cluster
    node: RealNode


@pytest.fixture(scope="package")
def platform(
    cluster: Cluster, real_node: RealNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    kube.apply_crd(cluster.api, CRD)
    realpods.apply_operator(cluster.kubectl, cluster.kubeconfig)
    body = yaml.safe_load(SAMPLE.read_text())
    body["spec"]["monitoring"]["enabled"] = False
    manifest = tmp_path_factory.mktemp("real-node") / "cluster-configuration.yaml"
    manifest.write_text(yaml.safe_dump(body))
    kubectl(cluster.kubectl, cluster.kubeconfig, "apply", "-f", str(manifest))
    try:
        realpods.wait_available(cluster.api, "ks-installer", timeout=300)
        wait_ready(cluster)
        yield Platform(cluster, real_node)
    finally:
        for pod in operator_pods(cluster):
            if pod.spec.node_name == NODE_NAME:
                try:
                    log = pod_log(cluster, pod.metadata.name, "installer")
                except client.ApiException:
                    continue
                sys.stderr.write(f"\n---- {pod.metadata.name} log (tail) ----\n{log[-3000:]}\n")
        # The operator first (it would act on what the uninstall removes), then the platform.
        kubectl(cluster.kubectl, cluster.kubeconfig, "-n", NS, "delete", "deployment", "ks-installer",
                "--wait=true", "--timeout=120s", check=False)  # fmt: skip
        uninstall_platform(cluster.kubectl, cluster.kubeconfig, NS)
        for kind, name in (("clusterrolebinding", "ks-installer"), ("clusterrole", "ks-installer")):
            kubectl(
                cluster.kubectl, cluster.kubeconfig, "delete", kind, name, "--ignore-not-found", check=False
            )
        kubectl(cluster.kubectl, cluster.kubeconfig, "-n", NS, "delete", "serviceaccount", "ks-installer",
                "--ignore-not-found", check=False)  # fmt: skip
