"""The Kubernetes API proxy and the gateway routes, through a real ks-apiserver."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from kubernetes import client

from tests.apiserver.conftest import ApiServer, StartServer, config_doc, unique
from tests.services import RedisServer, free_port

pytestmark = pytest.mark.cluster

PASSWORD = "P@88w0rd-Proxy1"


@pytest.fixture(scope="module")
def admin_token(apiserver: ApiServer) -> str:
    name = apiserver.make_user(unique("proxy-admin"), PASSWORD, globalrole="platform-admin")
    return apiserver.login(name, PASSWORD)


def test_get_matches_kube_apiserver_and_uses_the_servers_credentials(
    apiserver: ApiServer, admin_token: str, namespace: str
) -> None:
    direct = client.CoreV1Api(apiserver.users.cluster.api).read_namespace(namespace)
    resp = apiserver.get(f"/api/v1/namespaces/{namespace}", token=admin_token)
    assert resp.status_code == 200, resp.text
    assert resp.json()["metadata"]["uid"] == direct.metadata.uid
    # Impersonation headers are the caller's, not the server's: they are dropped.
    resp = apiserver.get(
        f"/api/v1/namespaces/{namespace}", token=admin_token, headers={"Impersonate-User": "nobody-at-all"}
    )
    assert resp.status_code == 200
    assert apiserver.get("/apis", token=admin_token).json()["kind"] == "APIGroupList"
    missing = apiserver.get(f"/api/v1/namespaces/{namespace}/configmaps/none", token=admin_token)
    assert (
        missing.status_code == 404 and missing.json()["reason"] == "NotFound"
    )  # kube-apiserver's own Status


def test_writes_go_through_and_unauthorized_callers_are_stopped(
    apiserver: ApiServer, admin_token: str, namespace: str
) -> None:
    url = f"{apiserver.url}/api/v1/namespaces/{namespace}/configmaps"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "via-proxy"}, "data": {"a": "1"}}
    auth = {"Authorization": f"Bearer {admin_token}"}
    created = requests.post(url, json=body, headers=auth, timeout=30)
    assert created.status_code == 201, created.text
    patched = requests.patch(
        f"{url}/via-proxy", data=json.dumps({"data": {"b": "2"}}), timeout=30,
        headers={**auth, "Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert patched.status_code == 200 and patched.json()["data"] == {"a": "1", "b": "2"}

    nobody = apiserver.make_user(unique("proxy-nobody"), PASSWORD)
    token = apiserver.login(nobody, PASSWORD)
    denied = requests.delete(f"{url}/via-proxy", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert denied.status_code == 403 and denied.json()["kind"] == "Status"
    assert requests.delete(f"{url}/via-proxy", headers=auth, timeout=30).status_code == 200


def test_watch_streams_events_through_the_proxy(
    apiserver: ApiServer, admin_token: str, namespace: str
) -> None:
    name = f"watched-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(apiserver.users.cluster.api)
    url = f"{apiserver.url}/api/v1/namespaces/{namespace}/configmaps?watch=1&timeoutSeconds=30"
    with requests.get(
        url, headers={"Authorization": f"Bearer {admin_token}"}, stream=True, timeout=20
    ) as resp:
        assert resp.status_code == 200
        timer = threading.Timer(
            0.5, lambda: core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})
        )
        timer.start()
        seen: list[tuple[str, str]] = []
        deadline = time.monotonic() + 20
        for line in resp.iter_lines():
            if line:
                event = json.loads(line)
                seen.append((event["type"], event["object"]["metadata"]["name"]))
                if seen[-1] == ("ADDED", name):
                    break
            assert time.monotonic() < deadline, f"no ADDED event for {name}; saw {seen}"
        timer.join()
    assert ("ADDED", name) in seen


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "authorization": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_backend() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent_backend() -> Iterator[str]:
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_gateway_routes_and_an_unreachable_backend(
    apiserver: ApiServer, start_apiserver: StartServer, redis_server: RedisServer, admin_token: str,
    echo_backend: str, silent_backend: str,
) -> None:  # fmt: skip
    doc = config_doc(
        redis_server,
        extra={
            "gateway": {"responseTimeout": "1s", "routes": [
                {"prefix": "/kapis/echo.kubesphere.io", "backend": echo_backend, "stripPrefix": True},
                {"prefix": "/kapis/silent.kubesphere.io", "backend": silent_backend},
            ]},
            "devops": {"endpoint": f"http://127.0.0.1:{free_port()}", "host": echo_backend + "/jenkins/"},
        },
    )  # fmt: skip
    gw = start_apiserver(doc)
    resp = gw.get("/kapis/echo.kubesphere.io/v1/things?x=1", token=admin_token)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"path": "/v1/things?x=1", "authorization": f"Bearer {admin_token}"}
    jenkins = gw.get("/kapis/jenkins.kubesphere.io/job/a/api/json", token=admin_token)
    assert jenkins.json()["path"] == "/jenkins/job/a/api/json"
    started = time.monotonic()
    down = gw.get("/kapis/devops.kubesphere.io/v1alpha3/devops", token=admin_token)
    assert time.monotonic() - started < 10
    assert down.status_code == 502
    assert down.json()["reason"] == "BadGateway" and down.json()["kind"] == "Status"
    silent = gw.get("/kapis/silent.kubesphere.io/v1/x", token=admin_token)
    assert (silent.status_code, silent.json()["reason"]) == (504, "GatewayTimeout")
    # Gateway routes are authorized like everything else.
    assert gw.get("/kapis/echo.kubesphere.io/v1/things").status_code == 403


def test_dot_segments_are_refused_before_authorization(apiserver: ApiServer, namespace: str) -> None:
    for path in (
        f"/oauth/../api/v1/namespaces/{namespace}",
        f"/api/v1/namespaces/{namespace}/%2e%2e/kube-system",
    ):
        req = requests.Request("GET", apiserver.url + "/x").prepare()
        req.url = apiserver.url + path  # as written, not normalised by the client
        resp = requests.Session().send(req, timeout=30)
        assert resp.status_code == 400 and resp.json()["reason"] == "BadRequest", (path, resp.text)


def test_gateway_route_table() -> None:
    from apiserver.proxy import gateway_routes
    from kubesphere.config import parse

    cfg = parse(
        {
            "gateway": {
                "routes": [{"prefix": "/kapis/devops.kubesphere.io/v1alpha3", "backend": "http://special"}]
            },
            "devops": {"endpoint": "http://devops-api:9090", "host": "http://jenkins/"},
        },
        env={},
    )
    routes = gateway_routes(cfg)
    assert routes[0].prefix == "/kapis/devops.kubesphere.io/v1alpha3"  # longest first
    by_path = {p: next(r for r in routes if r.matches(p)) for p in (
        "/kapis/devops.kubesphere.io/v1alpha3/devops", "/kapis/devops.kubesphere.io/v1alpha2/x",
        "/kapis/gitops.kubesphere.io/v1alpha1/apps", "/kapis/jenkins.kubesphere.io/job/a",
    )}  # fmt: skip
    assert by_path["/kapis/devops.kubesphere.io/v1alpha3/devops"].backend == "http://special"
    assert by_path["/kapis/devops.kubesphere.io/v1alpha2/x"].target(
        "/kapis/devops.kubesphere.io/v1alpha2/x?q=1"
    ) == ("http://devops-api:9090/kapis/devops.kubesphere.io/v1alpha2/x?q=1")
    jenkins = by_path["/kapis/jenkins.kubesphere.io/job/a"]
    assert jenkins.target("/kapis/jenkins.kubesphere.io/job/a") == "http://jenkins/job/a"
    assert not any(r.matches("/kapis/devops.kubesphere.iox/v1") for r in routes)
