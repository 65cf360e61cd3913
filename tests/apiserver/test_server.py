"""The server around the handlers: health, readiness, metrics, audit lines, the 500 guard, the CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from apiserver import server
from apiserver.errors import APIError
from apiserver.kube import KubeError
from tests.apiserver.conftest import REPO, ApiServer, StartServer, config_doc, unique
from tests.services import free_port

PASSWORD = "P@88w0rd-Server1"


@pytest.mark.cluster
def test_health_readiness_and_metrics(apiserver: ApiServer) -> None:
    assert apiserver.get("/healthz").text == "ok"
    assert apiserver.get("/readyz").text == "ok"
    assert apiserver.get("/metrics").status_code == 403  # metrics are for the platform's admins
    admin = apiserver.make_user(unique("metrics-admin"), PASSWORD, globalrole="platform-admin")
    token = apiserver.login(admin, PASSWORD)
    apiserver.get("/api/v1/namespaces/default", token=token)
    text = apiserver.get("/metrics", token=token).text
    assert re.search(r'ks_apiserver_request_total\{code="200",group="/api",verb="get"\} \d', text), text[
        :2000
    ]
    assert re.search(r'ks_apiserver_request_total\{code="403",group="/metrics",verb="GET"\} \d', text)
    assert 'ks_apiserver_cache_objects{resource="users.iam.kubesphere.io"}' in text
    assert "ks_apiserver_caches_synced 1.0" in text


@pytest.mark.cluster
def test_not_ready_and_503_without_redis(apiserver: ApiServer, start_apiserver: StartServer) -> None:
    doc = config_doc(None)
    doc["cache"] = {"type": "redis", "options": {"host": "127.0.0.1", "port": free_port()}}  # nothing there
    srv = start_apiserver(doc, wait_path="/healthz")
    resp = srv.get("/readyz")
    assert resp.status_code == 503 and "token cache unreachable" in resp.text, resp.text
    name = apiserver.make_user(unique("no-redis"), PASSWORD)
    srv.wait_user_cached(name, PASSWORD)  # basic auth needs no token cache
    login = srv.token_request(grant_type="password", username=name, password=PASSWORD)
    assert login.status_code == 503 and login.json()["message"] == "the token cache is unavailable", (
        login.text
    )
    token = apiserver.login(name, PASSWORD)
    refused = srv.get("/oauth/userinfo", token=token)
    assert refused.status_code == 503, refused.text
    assert srv.proc.poll() is None


@pytest.mark.cluster
def test_audit_lines_name_the_user_and_never_the_secrets(apiserver: ApiServer) -> None:
    name = apiserver.make_user(unique("audited"), PASSWORD)
    token = apiserver.login(name, PASSWORD)
    apiserver.get("/oauth/userinfo?secret=query-value", token=token)
    log = apiserver.log_text()
    lines = [
        json.loads(line.split("apiserver.audit ", 1)[1])
        for line in log.splitlines()
        if "apiserver.audit {" in line
    ]
    mine = [line for line in lines if line["user"] == name and line["path"] == "/oauth/userinfo"]
    assert mine and mine[-1]["status"] == 200 and mine[-1]["verb"] == "GET" and mine[-1]["ms"] >= 0
    assert token not in log and PASSWORD not in log and "query-value" not in log


def _guarded_app() -> web.Application:
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("something nobody expected")

    async def handler_error(request: web.Request) -> web.Response:
        raise APIError(422, 'User.iam.kubesphere.io "x" is invalid')

    async def filter_error(request: web.Request) -> web.Response:
        raise APIError(401, "Unauthorized: nope", as_status=True)

    async def kube_error(request: web.Request) -> web.Response:
        raise KubeError(409, {"message": 'users.iam.kubesphere.io "x" already exists', "code": 409})

    app = web.Application(middlewares=[server.error_guard])
    for path, fn in (
        ("/boom", boom),
        ("/handler", handler_error),
        ("/filter", filter_error),
        ("/kube", kube_error),
    ):
        app.router.add_get(path, fn)
    return app


def test_error_guard_formats(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        async with TestClient(TestServer(_guarded_app())) as http:
            with caplog.at_level(logging.ERROR, logger="apiserver.server"):
                resp = await http.get("/boom")
                body = await resp.json()
            assert resp.status == 500 and body["kind"] == "Status" and body["reason"] == "InternalError"
            error_id = re.search(r"error id (\w+)", body["message"]).group(1)
            assert "something nobody expected" not in body["message"]
            logged = [r for r in caplog.records if error_id in r.getMessage()]
            assert logged and logged[0].exc_info is not None  # the traceback is in the log, by id
            # Still serving after it.
            resp = await http.get("/handler")
            assert (resp.status, resp.content_type, await resp.text()) == (
                422, "text/plain", 'User.iam.kubesphere.io "x" is invalid\n',
            )  # fmt: skip
            resp = await http.get("/filter")
            assert resp.status == 401 and (await resp.json())["message"] == "Unauthorized: nope"
            resp = await http.get("/kube")
            assert (resp.status, await resp.text()) == (409, 'users.iam.kubesphere.io "x" already exists\n')
            resp = await http.get("/nowhere")
            assert (resp.status, await resp.text()) == (404, "404 page not found\n")

    asyncio.run(go())


@pytest.mark.parametrize(
    ("config", "env", "named"),
    [
        ("cache:\n  type: memcached\n", {"KUBESPHERE_JWT_SECRET": "x" * 32}, "cache.type"),
        ("authentication:\n  multipleLogin: true\n", {}, "authentication.jwtSecret"),
        ("authentication: [1]\n", {"KUBESPHERE_JWT_SECRET": "x" * 32}, "authentication"),
        (
            "gateway:\n  responseTimeout: soon\n",
            {"KUBESPHERE_JWT_SECRET": "x" * 32},
            "gateway.responseTimeout",
        ),
    ],
)
def test_bad_configuration_exits_2_naming_the_key(
    tmp_path: Path, config: str, env: dict[str, str], named: str
) -> None:
    path = tmp_path / "kubesphere.yaml"
    path.write_text(config)
    result = subprocess.run(
        [sys.executable, "-m", "apiserver.cli", "--config", str(path), "--bind", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert named in result.stderr


@pytest.mark.parametrize(
    ("path", "group"),
    [
        ("/api/v1/pods", "/api"),
        ("/apis/apps/v1/deployments", "/apis"),
        ("/kapis/iam.kubesphere.io/v1alpha2/users", "/kapis/iam.kubesphere.io"),
        ("/kapis/clusters/host/tenant.kubesphere.io/v1alpha2/workspaces", "/kapis/tenant.kubesphere.io"),
        ("/oauth/token", "/oauth"),
        ("/readyz", "/readyz"),
        ("/", "root"),
        ("/some/random/path", "other"),
    ],
)
def test_metrics_route_groups_stay_few(path: str, group: str) -> None:
    from apiserver.metrics import route_group

    assert route_group(path) == group


def test_tls_flags_go_together_and_must_load(tmp_path: Path) -> None:
    from apiserver.cli import tls_context
    from devcluster.pki import ensure_pki, ensure_serving_cert
    from kubesphere.config import ConfigError

    assert tls_context(None, None) is None
    ensure_pki(tmp_path, "10.96.0.1")
    cert, key = ensure_serving_cert(tmp_path, "ks", cn="ks-apiserver")
    assert tls_context(cert, key) is not None
    with pytest.raises(ConfigError, match="go together"):
        tls_context(cert, None)
    with pytest.raises(ConfigError, match="cannot load"):
        tls_context(cert, tmp_path / "ca.key")  # not the certificate's key
