"""Credentials in one order, and the in-cluster token read the way the loader stores it."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiserver.kube import KubeClient
from devcluster.pki import ensure_pki
from kubesphere import kubeconfig
from kubesphere.errors import CredentialsError

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: file-token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.fixture
def service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pod's view: the service env and a mounted token and CA."""
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text("pod-token")
    ensure_pki(tmp_path / "pki", "10.96.0.1")  # a real CA, as the pod would have mounted
    (sa / "ca.crt").write_bytes((tmp_path / "pki" / "ca.crt").read_bytes())
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    return sa


def test_in_cluster_token_reaches_every_client(service_account: Path) -> None:
    cfg = kubeconfig.load(None, service_account=service_account)
    assert cfg.host == "https://10.96.0.1:443"
    assert kubeconfig.bearer_token(cfg) == "bearer pod-token"
    # The apiserver's aiohttp client sends the same header (it read another key and sent none).
    client = KubeClient.from_configuration(cfg)
    assert client.headers()["Authorization"] == "bearer pod-token"


def test_explicit_file_then_env_then_in_cluster(
    service_account: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = tmp_path / "explicit"
    explicit.write_text(KUBECONFIG)
    env = tmp_path / "env"
    env.write_text(KUBECONFIG.replace("file-token", "env-token"))
    assert kubeconfig.source(None) == "in-cluster"
    monkeypatch.setenv("KUBECONFIG", f"{env}:/elsewhere")
    assert kubeconfig.source(None) == env
    assert kubeconfig.bearer_token(kubeconfig.load(None)) == "Bearer env-token"
    assert kubeconfig.source(explicit) == explicit
    assert kubeconfig.bearer_token(kubeconfig.load(explicit)) == "Bearer file-token"


def test_no_credentials_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(CredentialsError, match="pass --kubeconfig, set KUBECONFIG, or run in a pod"):
        kubeconfig.load(None)
    with pytest.raises(CredentialsError, match="no such file"):
        kubeconfig.load(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(CredentialsError, match="broken"):
        kubeconfig.load(broken)
