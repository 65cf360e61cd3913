"""deploy/ applies to a real API server as users apply it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.helpers import kubectl

pytestmark = pytest.mark.cluster

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_installer_manifests_pass_server_side_validation(cluster: Cluster, cc_crd: None) -> None:
    result = kubectl(
        cluster.kubectl, cluster.kubeconfig, "apply", "--dry-run=server", "-f", str(DEPLOY / "installer.yaml")
    )
    assert "deployment.apps/ks-installer" in result.stdout
    assert "clusterrole.rbac.authorization.k8s.io/ks-installer" in result.stdout


def test_kustomization_renders_crd_and_operator(cluster: Cluster) -> None:
    out = kubectl(cluster.kubectl, cluster.kubeconfig, "kustomize", str(DEPLOY)).stdout
    assert "kind: CustomResourceDefinition" in out
    assert "image: kubesphere/ks-installer:v0.1.0" in out
