"""The console's kubeconfig download (toolbox → kubeconfig), and kubectl with the downloaded file.

The console fetches ``/kapis/resources.kubesphere.io/v1alpha2/users/{me}/kubeconfig`` and offers it
as a file.  It holds a client certificate for the user that ks-controller-manager requested through
a CertificateSigningRequest, approved, and kube-controller-manager signed; kubectl with it talks to
kube-apiserver directly, as that user, with that user's Kubernetes rights (the project's Role
bindings made through the members API).
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.apiserver.conftest import ApiServer
from tests.conftest import Cluster
from tests.console.support import WAIT, Site, call
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster
KUBECONFIG = "/kapis/resources.kubesphere.io/v1alpha2/users/{}/kubeconfig"


def download(server: ApiServer, site: Site, who: str, user: str | None = None) -> str:
    """The console's fetch, once the controllers have filed the certificate."""

    def ready() -> str | None:
        resp = call(server, "GET", KUBECONFIG.format(user or site.users[who]), site.tokens[who])
        assert resp.status_code in (200, 404), resp.text
        if resp.status_code != 200:
            return None
        users = (yaml.safe_load(resp.text) or {}).get("users") or []
        return resp.text if users and (users[0].get("user") or {}).get("client-certificate-data") else None

    text: str = wait_for(ready, timeout=WAIT, what="the kubeconfig with its certificate")
    return text


def kubectl(cluster: Cluster, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.kubectl), f"--kubeconfig={path}", *args], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def test_downloaded_kubeconfig_acts_as_the_user_with_their_rights(
    live: Site, second_server: ApiServer, tmp_path: Path
) -> None:
    text = download(second_server, live, "viewer")
    doc = yaml.safe_load(text)
    name = live.users["viewer"]
    assert doc["current-context"] == f"{name}@local"
    assert doc["clusters"][0]["cluster"]["server"] == live.cluster.server
    pem = base64.b64decode(doc["users"][0]["user"]["client-certificate-data"])
    cn = x509.load_pem_x509_certificate(pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == name
    path = tmp_path / "kubeconfig"
    path.write_text(text)

    who = kubectl(live.cluster, path, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert who.returncode == 0, who.stderr
    assert who.stdout == name
    pods = kubectl(live.cluster, path, "-n", live.ns, "get", "pods", "-o", "name")
    assert pods.returncode == 0, pods.stderr
    assert "pod/term" in pods.stdout.split()
    write = kubectl(live.cluster, path, "-n", live.ns, "create", "configmap", "nope")
    assert write.returncode != 0 and "forbidden" in write.stderr.lower(), write
    elsewhere = kubectl(live.cluster, path, "-n", "kube-system", "get", "pods")
    assert elsewhere.returncode != 0 and "forbidden" in elsewhere.stderr.lower(), elsewhere
    # The operator's file can what the operator can: create in the project.
    operator = tmp_path / "operator"
    operator.write_text(download(second_server, live, "regular"))
    made = kubectl(live.cluster, operator, "-n", live.ns, "create", "configmap", "from-kubeconfig")
    assert made.returncode == 0, made.stderr


def test_kubeconfig_download_is_the_users_own(live: Site, second_server: ApiServer) -> None:
    """Someone else's file is forbidden to a user, not to a platform admin; an unknown user is 404."""
    other = live.users["wsadmin"]
    denied = call(second_server, "GET", KUBECONFIG.format(other), live.tokens["viewer"])
    assert denied.status_code == 403, denied.text
    assert download(second_server, live, "admin", other)
    missing = call(second_server, "GET", KUBECONFIG.format("no-such-user"), live.tokens["admin"])
    assert missing.status_code == 404
    assert missing.json() == {"message": 'configmaps "kubeconfig-no-such-user" not found'}
    anonymous = call(second_server, "GET", KUBECONFIG.format(other))
    assert anonymous.status_code in (401, 403)
