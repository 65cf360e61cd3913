"""deploy/ applies to a real API server as users apply it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import Cluster
from tests.helpers import kubectl

pytestmark = pytest.mark.cluster

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_installer_manifests_pass_server_side_validation(
    cluster: Cluster, cc_crd: None, namespace: str, tmp_path: Path
) -> None:
    # A server-side dry run creates nothing, so the namespaced objects need an existing
    # namespace: validate them in the test's own namespace.
    docs = [d for d in yaml.safe_load_all((DEPLOY / "installer.yaml").read_text()) if d]
    text = yaml.safe_dump_all([d for d in docs if d["kind"] != "Namespace"]).replace(
        "kubesphere-system", namespace
    )
    manifest = tmp_path / "installer.yaml"
    manifest.write_text(text)
    result = kubectl(cluster.kubectl, cluster.kubeconfig, "apply", "--dry-run=server", "-f", str(manifest))
    assert "deployment.apps/ks-installer" in result.stdout
    assert "clusterrole.rbac.authorization.k8s.io/ks-installer" in result.stdout
    assert {d["kind"] for d in docs} == {
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment",
    }  # fmt: skip


def test_kustomization_renders_crd_and_operator(cluster: Cluster) -> None:
    out = kubectl(cluster.kubectl, cluster.kubeconfig, "kustomize", str(DEPLOY)).stdout
    assert "kind: CustomResourceDefinition" in out
    assert "image: kubesphere/ks-installer:v0.2.0" in out
