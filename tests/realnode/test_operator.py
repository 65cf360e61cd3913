"""The operator as deployed: deploy/'s Deployment on the real node, in its pod.

Two replicas of the project image, uid 1002, a read-only root file system, the
ServiceAccount token kubelet projects; one leads through the Lease.  The
platform it installed (conftest) is Ready; the documented devops patch turns
devops on, the leader's pod is killed, and the operator that takes over turns
devops off again.  Monitoring is off on this cluster (see conftest).
"""

from __future__ import annotations

import json
import subprocess

import pytest
from kubernetes import client

from devcluster.nodeconfig import NODE_NAME
from tests.helpers import kubectl, wait_for
from tests.realnode.conftest import NS, Platform, leader, operator_pods, pod_log, wait_ready

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def exec_in(platform: Platform, pod: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    c = platform.cluster
    return kubectl(c.kubectl, c.kubeconfig, "-n", NS, "exec", pod, "-c", "installer", "--", *cmd, check=False)


def patch_devops(platform: Platform, value: bool) -> None:
    """The documented command: kubectl patch -nkubesphere-system cc ks-installer --type=json -p=..."""
    ops = json.dumps([{"op": "replace", "path": "/spec/devops/enabled", "value": value}])
    c = platform.cluster
    kubectl(
        c.kubectl,
        c.kubeconfig,
        "patch",
        "-nkubesphere-system",
        "cc",
        "ks-installer",
        "--type=json",
        f"-p={ops}",
    )


def test_operator_pods_run_as_the_deployment_says(platform: Platform) -> None:
    pods = operator_pods(platform.cluster)
    assert len(pods) == 2 and {p.spec.node_name for p in pods} == {NODE_NAME}
    for pod in pods:
        status = pod.status.container_statuses[0]
        assert status.ready and status.restart_count == 0  # readiness passes, liveness never failed
        assert exec_in(platform, pod.metadata.name, "id", "-u").stdout.strip() == "1002"
        write = exec_in(platform, pod.metadata.name, "touch", "/opt/ks-installer/probe")
        assert write.returncode != 0 and "Read-only file system" in write.stderr
        token = exec_in(
            platform, pod.metadata.name, "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"
        )
        assert token.returncode == 0 and token.stdout.count(".") == 2  # the projected service-account JWT
    assert leader(platform.cluster) in {p.metadata.name for p in pods}


def test_the_install_is_ready_and_the_leader_prints_the_welcome_banner(platform: Platform) -> None:
    cc = wait_ready(platform.cluster)
    assert cc["status"]["core"]["status"] == "enabled"
    assert set(cc["status"]["components"]) == {"core"}  # monitoring off, nothing else switched on
    # Through kubelet, as `kubectl -n kubesphere-system logs deploy/ks-installer` reads it.
    assert "Welcome to KubeSphere!" in pod_log(platform.cluster, leader(platform.cluster), "installer")
    for name in ("ks-apiserver", "ks-controller-manager", "ks-console"):
        d = client.AppsV1Api(platform.cluster.api).read_namespaced_deployment(name, NS)
        assert (d.status.available_replicas or 0) == d.spec.replicas


def test_devops_toggles_and_a_killed_leader_is_replaced(platform: Platform) -> None:
    c = platform.cluster
    wait_ready(c)
    patch_devops(platform, True)
    cc = wait_ready(c, timeout=1500)
    assert cc["status"]["devops"]["status"] == "enabled"
    assert cc["status"]["components"]["devops"]["state"] == "Enabled"

    killed = leader(c)
    kubectl(c.kubectl, c.kubeconfig, "-n", NS, "delete", "pod", killed, "--grace-period=0", "--force")

    def new_leader() -> str | None:
        holder = leader(c)
        return holder if holder and holder != killed else None

    took_over = wait_for(new_leader, timeout=120, what="another operator pod to take the lease", interval=1)
    assert took_over in {p.metadata.name for p in operator_pods(c)}

    def replaced() -> bool:
        pods = [p for p in operator_pods(c) if p.metadata.name != killed]
        return len(pods) == 2 and all(
            p.status.container_statuses and p.status.container_statuses[0].ready for p in pods
        )

    wait_for(replaced, timeout=300, what="the Deployment to replace the killed pod", interval=2)

    patch_devops(platform, False)
    cc = wait_ready(c, timeout=900)
    assert cc["status"]["components"]["devops"]["state"] == "Disabled"
    assert "devops" not in cc["status"]  # the ks-installer-compatible key goes with the component
    for name in ("devops-apiserver", "devops-controller", "devops-jenkins"):
        with pytest.raises(client.ApiException) as gone:
            client.AppsV1Api(c.api).read_namespaced_deployment(name, "kubesphere-devops-system")
        assert gone.value.status == 404
    # The disable was the new leader's work.
    assert "[devops]" in pod_log(c, took_over, "installer")
