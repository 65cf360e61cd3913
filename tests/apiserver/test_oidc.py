"""OpenID Connect and the token webhook: discovery, JWKS, the code flow, and kube-apiserver's webhook.

The webhook test starts a second, short-lived kube-apiserver of the local cluster (same etcd, its
own prefix) whose ``--authentication-token-webhook-config-file`` points at a ks-apiserver over
TLS, and sends it a KubeSphere token directly.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from pathlib import Path

import jwt
import pytest
import requests
import yaml

from devcluster.cluster import LocalCluster
from devcluster.pki import ensure_serving_cert
from devcluster.processes import terminate
from tests.apiserver.conftest import CLIENT, ApiServer, StartServer, unique
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster
PASSWORD = "P@88w0rd-Oidc1"


def test_discovery_names_the_endpoints_that_answer(apiserver: ApiServer) -> None:
    doc = requests.get(f"{apiserver.url}/oauth/.well-known/openid-configuration", timeout=10).json()
    assert requests.get(f"{apiserver.url}/.well-known/openid-configuration", timeout=10).json() == doc
    assert doc["authorization_endpoint"] == f"{apiserver.url}/oauth/authorize"
    assert doc["jwks_uri"] == f"{apiserver.url}/oauth/keys"
    keys = requests.get(doc["jwks_uri"], timeout=10).json()["keys"]
    assert [(k["kty"], k["alg"], k["use"]) for k in keys] == [("RSA", "RS256", "sig")]
    anonymous = requests.get(doc["authorization_endpoint"], params={**_authorize("code")}, timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "login_required"


def _authorize(response_type: str, **extra: str) -> dict[str, str]:
    return {"client_id": CLIENT["client_id"], "redirect_uri": "https://console.example/cb",
            "response_type": response_type, "state": "s1", **extra}  # fmt: skip


def test_code_flow_issues_an_id_token_the_jwks_verifies(apiserver: ApiServer) -> None:
    name = apiserver.make_user(unique("oidc"), PASSWORD)
    token = apiserver.login(name, PASSWORD)
    resp = apiserver.get(
        "/oauth/authorize", token=token, params=_authorize("code", scope="openid", nonce="n1"),
        allow_redirects=False,
    )  # fmt: skip
    assert resp.status_code == 302, resp.text
    location = urllib.parse.urlsplit(resp.headers["Location"])
    assert location.netloc == "console.example"
    query = urllib.parse.parse_qs(location.query)
    assert query["state"] == ["s1"]
    exchanged = apiserver.token_request(grant_type="code", code=query["code"][0])
    assert exchanged.status_code == 200, exchanged.text
    body = exchanged.json()
    assert apiserver.get("/oauth/userinfo", token=body["access_token"]).json()["sub"] == name
    jwks = jwt.PyJWKSet.from_dict(requests.get(f"{apiserver.url}/oauth/keys", timeout=10).json())
    key = jwks[jwt.get_unverified_header(body["id_token"])["kid"]]
    claims = jwt.decode(body["id_token"], key.key, algorithms=["RS256"], audience=CLIENT["client_id"])
    assert (claims["sub"], claims["nonce"], claims["email"]) == (name, "n1", f"{name}@example.com")
    again = apiserver.token_request(grant_type="code", code=query["code"][0])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"  # one use only


def test_redirect_uri_must_be_the_clients(apiserver: ApiServer, start_apiserver: StartServer) -> None:
    from tests.apiserver.conftest import config_doc

    doc = config_doc(None)
    doc["authentication"]["oauthOptions"]["clients"][0]["redirectURIs"] = ["https://ok.example/cb"]
    server = start_apiserver(doc=doc)
    name = server.make_user(unique("oidc"), PASSWORD)
    token = server.login(name, PASSWORD)
    bad = server.get("/oauth/authorize", token=token, params=_authorize("token"), allow_redirects=False)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    ok = server.get(
        "/oauth/authorize", token=token, params={**_authorize("token"), "redirect_uri": "https://ok.example/cb"},
        allow_redirects=False,
    )  # fmt: skip
    assert ok.status_code == 302
    fragment = urllib.parse.parse_qs(urllib.parse.urlsplit(ok.headers["Location"]).fragment)
    assert server.get("/oauth/userinfo", token=fragment["access_token"][0]).json()["sub"] == name


def test_token_review(apiserver: ApiServer) -> None:
    name = apiserver.make_user(unique("review"), PASSWORD)
    token = apiserver.login(name, PASSWORD)

    def review(value: str) -> requests.Response:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": value}}
        return requests.post(f"{apiserver.url}/oauth/authenticate", json=body, timeout=10)

    good = review(token).json()["status"]
    assert good["authenticated"] is True and good["user"]["username"] == name
    assert review(token + "x").json()["status"]["authenticated"] is False
    apiserver.users.set_state(name, "Disabled")
    apiserver.wait_user_cached(name, PASSWORD, state="Disabled")
    disabled = review(token).json()["status"]
    assert (
        disabled == {"authenticated": False, "error": disabled["error"]} and "not active" in disabled["error"]
    )
    assert requests.post(f"{apiserver.url}/oauth/authenticate", data=b"{", timeout=10).status_code == 400


def test_kube_apiserver_accepts_kubesphere_tokens_through_the_webhook(
    cluster: Cluster, start_apiserver: StartServer, tmp_path: Path
) -> None:
    pki = cluster.kubeconfig.parent / "pki"
    cert, key = ensure_serving_cert(pki, "ks-apiserver-test", cn="ks-apiserver")
    server = start_apiserver(tls=(cert, key, pki / "ca.crt"))
    name = server.make_user(unique("hook"), PASSWORD)
    token = server.login(name, PASSWORD)
    webhook = tmp_path / "webhook.yaml"
    webhook.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "ks", "cluster": {"server": f"{server.url}/oauth/authenticate",
                                                "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": "kube-apiserver", "user": {}}],
        "contexts": [{"name": "ks", "context": {"cluster": "ks", "user": "kube-apiserver"}}],
        "current-context": "ks",
    }))  # fmt: skip
    pid, url = LocalCluster(cluster.kubeconfig.parent).extra_apiserver(
        f"webhook-{uuid.uuid4().hex[:6]}",
        args=[f"--authentication-token-webhook-config-file={webhook}",
              "--authentication-token-webhook-version=v1", "--authentication-token-webhook-cache-ttl=0s"],
    )  # fmt: skip
    try:

        def whoami(bearer: str) -> requests.Response:
            body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
            return requests.post(
                f"{url}/apis/authentication.k8s.io/v1/selfsubjectreviews", data=json.dumps(body),
                headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
                verify=str(pki / "ca.crt"), timeout=30,
            )  # fmt: skip

        seen = whoami(token)
        assert seen.status_code == 201, seen.text
        info = seen.json()["status"]["userInfo"]
        assert info["username"] == name and "system:authenticated" in info["groups"]
        assert whoami(token + "x").status_code == 401
        # kube-apiserver asked ks-apiserver, which logged each review it answered.
        assert '"path": "/oauth/authenticate", "status": 200' in server.log_text()
    finally:
        terminate(pid)
