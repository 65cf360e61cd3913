"""Which credentials ks-apiserver's Kubernetes client sends, for each way it can be configured.

The pinned kubernetes client's loaders keep a bearer token under the key
``BearerToken``; a client that looked under ``authorization`` only talked to
kube-apiserver as ``system:anonymous`` in a pod (the projected service-account
token) and with a token kubeconfig.  The local cluster's kubeconfig carries a
client certificate, so only these tests and the real-node suite see a token.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes.config import incluster_config

from apiserver import kube
from devcluster.pki import ensure_pki


def test_in_cluster_client_sends_the_projected_service_account_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_pki(tmp_path, "10.96.0.1")
    token = tmp_path / "token"
    token.write_text("pod-token-1")
    # What the kubelet gives a pod: the service variables, the projected token and CA.
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    client = kube.KubeClient.from_kubeconfig(None)
    assert client.server == "https://10.96.0.1:443"
    assert client.headers()["Authorization"] == "bearer pod-token-1"


def test_kubeconfig_token_is_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "kubeconfig-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    client = kube.KubeClient.from_kubeconfig(path)
    assert client.headers()["Authorization"] == "Bearer kubeconfig-token"
