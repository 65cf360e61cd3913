"""ks-apiserver as a real subprocess against the local cluster and a real redis-server.

``apiserver`` (session) is one server with the installer's defaults for the
tests to share: Redis token cache, rate limiter at 10 tries, multipleLogin on,
the ``kubesphere``/``kubesphere`` OAuth client.  ``start_apiserver`` starts more
(another replica on the same Redis, or a different configuration); they stop
at the end of the test.  Users made through ``make_user`` are cluster-scoped
with unique names and are deleted (with their bindings and login records) when
the session ends.  A failing test gets the servers' log tails in its report.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml
from kubernetes import client

from devcluster.cluster import LocalCluster
from devcluster.cluster import State as ClusterState
from tests.conftest import Cluster
from tests.services import PrometheusServer, RedisServer, free_port, local_cluster_jobs

REPO = Path(__file__).resolve().parents[2]
IAM = ("iam.kubesphere.io", "v1alpha2")
CLIENT = {"client_id": "kubesphere", "client_secret": "kubesphere"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def config_doc(
    redis: RedisServer | None,
    *,
    multiple_login: bool = True,
    max_tries: int = 10,
    access_token_max_age: str = "2h",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A kubesphere.yaml as the core role renders it (secrets go in the environment)."""
    doc: dict[str, Any] = {
        "authentication": {
            "authenticateRateLimiterMaxTries": max_tries,
            "authenticateRateLimiterDuration": "10m0s",
            "loginHistoryRetentionPeriod": "168h",
            "maximumClockSkew": "10s",
            "multipleLogin": multiple_login,
            "oauthOptions": {
                "accessTokenMaxAge": access_token_max_age,
                "accessTokenInactivityTimeout": "30m",
                "clients": [{"name": "kubesphere", "secret": "kubesphere", "redirectURIs": ["*"]}],
            },
        },
        "authorization": {"mode": "RBAC"},
        "cache": (
            {"type": "redis", "options": {"host": "127.0.0.1", "port": redis.port, "db": 0}}
            if redis is not None
            else {"type": "inmemory"}
        ),
    }
    doc.update(extra or {})
    return doc


@dataclass
class ApiServer:
    """One ``ks-apiserver`` process."""

    url: str
    config_path: Path
    log: Path
    proc: subprocess.Popen[bytes]
    users: UserFactory
    #: What ``requests`` verifies the server with: the CA file of a TLS server, else True.
    verify: str | bool = True

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # -- helpers the tests share ---------------------------------------------------------------
    def make_user(
        self, name: str, password: str, *, globalrole: str | None = None, state: str = "Active"
    ) -> str:
        self.users.create(name, password, globalrole=globalrole, state=state)
        self.wait_user_cached(name, password, state=state)
        return name

    def token_request(self, **form: str) -> requests.Response:
        return requests.post(
            f"{self.url}/oauth/token", data={**CLIENT, **form}, timeout=30, verify=self.verify
        )

    def login(self, name: str, password: str) -> str:
        resp = self.token_request(grant_type="password", username=name, password=password)
        assert resp.status_code == 200, f"login {name}: {resp.status_code} {resp.text}"
        token: str = resp.json()["access_token"]
        return token

    def get(self, path: str, *, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("verify", self.verify)
        return requests.get(self.url + path, headers=headers, timeout=kwargs.pop("timeout", 30), **kwargs)

    def wait_user_cached(
        self, name: str, password: str, *, state: str = "Active", timeout: float = 20
    ) -> None:
        """Until this server's informer has the user (probed without writing login records)."""
        expect = {"Active": 200, "Disabled": "account is not active", "AuthLimitExceeded": "rate limit"}[
            state
        ]
        basic = base64.b64encode(f"{name}:{password}".encode()).decode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if state == "Active":
                resp = requests.get(
                    f"{self.url}/oauth/userinfo",
                    headers={"Authorization": f"Basic {basic}"},
                    verify=self.verify,
                )
                if resp.status_code == expect:
                    return
            else:
                resp = self.token_request(grant_type="password", username=name, password=password)
                if str(expect) in resp.text:
                    return
            time.sleep(0.05)
        raise AssertionError(f"{self.url} never saw user {name} as {state}")


@dataclass
class UserFactory:
    """Creates Users (bcrypt cost 4) and remembers them for the session-end cleanup."""

    cluster: Cluster
    created: list[str] = field(default_factory=list)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.cluster.api)

    def create(
        self, name: str, password: str, *, globalrole: str | None = None, state: str = "Active"
    ) -> None:
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        annotations = {"iam.kubesphere.io/globalrole": globalrole} if globalrole else {}
        body = {
            "apiVersion": "/".join(IAM),
            "kind": "User",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"email": f"{name}@example.com", "password": hashed},
            "status": {"state": state},
        }
        self.created.append(name)
        self.custom.create_cluster_custom_object(*IAM, "users", body)
        if globalrole:
            self.custom.create_cluster_custom_object(
                *IAM,
                "globalrolebindings",
                {
                    "apiVersion": "/".join(IAM),
                    "kind": "GlobalRoleBinding",
                    "metadata": {
                        "name": f"{name}-{globalrole}",
                        "labels": {"iam.kubesphere.io/user-ref": name},
                    },
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}],
                    "roleRef": {"apiGroup": "iam.kubesphere.io", "kind": "GlobalRole", "name": globalrole},
                },
            )

    def set_state(self, name: str, state: str) -> None:
        self.custom.patch_cluster_custom_object(*IAM, "users", name, {"status": {"state": state}})

    def login_records(self, name: str) -> list[dict[str, Any]]:
        items = self.custom.list_cluster_custom_object(
            *IAM, "loginrecords", label_selector=f"iam.kubesphere.io/user-ref={name}"
        )["items"]
        return list(items)

    def cleanup(self) -> None:
        """Delete what the tests created; at session end a later suite may have removed the CRDs (404)."""
        for plural in ("globalrolebindings", "loginrecords"):
            for name in self.created:
                try:
                    items = self.custom.list_cluster_custom_object(
                        *IAM, plural, label_selector=f"iam.kubesphere.io/user-ref={name}"
                    )["items"]
                except client.ApiException as exc:
                    if exc.status == 404:
                        break  # the CRD is gone, and its objects with it
                    raise
                for item in items:
                    delete_object(self.custom, plural, item["metadata"]["name"])
        for name in self.created:
            delete_object(self.custom, "users", name)


def delete_object(custom: client.CustomObjectsApi, plural: str, name: str) -> None:
    """Delete; if a controller's finalizer keeps it, take the finalizers away (never hang)."""
    try:
        custom.delete_cluster_custom_object(*IAM, plural, name)
        custom.patch_cluster_custom_object(*IAM, plural, name, {"metadata": {"finalizers": None}})
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def start_server(
    cluster: Cluster,
    workdir: Path,
    doc: dict[str, Any],
    *,
    users: UserFactory,
    env: dict[str, str],
    timeout: float = 60,
    wait_path: str = "/readyz",
    tls: tuple[Path, Path, Path] | None = None,
) -> ApiServer:
    """A server on a free port; ``tls`` = (certificate, key, CA that signed it) serves HTTPS."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    name = f"apiserver-{port}"
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(doc, sort_keys=False))
    log = workdir / f"{name}.log"
    cmd = [
        sys.executable, "-m", "apiserver.cli", "--config", str(config_path),
        "--kubeconfig", str(cluster.kubeconfig), "--bind", f"127.0.0.1:{port}",
    ]  # fmt: skip
    if tls is not None:
        cmd += ["--tls-cert-file", str(tls[0]), "--tls-private-key-file", str(tls[1])]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **env}
        )
    server = ApiServer(
        url=f"{'https' if tls else 'http'}://127.0.0.1:{port}", config_path=config_path, log=log, proc=proc,
        users=users, verify=str(tls[2]) if tls else True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ks-apiserver exited with {proc.returncode}:\n{server.log_text()[-4000:]}")
        try:
            if requests.get(f"{server.url}{wait_path}", timeout=2, verify=server.verify).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"ks-apiserver was not ready within {timeout}s:\n{server.log_text()[-4000:]}")


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def apiserver_env(redis_server: RedisServer, jwt_secret: str) -> dict[str, str]:
    return {"KUBESPHERE_JWT_SECRET": jwt_secret, "KUBESPHERE_CACHE_PASSWORD": redis_server.password}


@pytest.fixture(scope="session")
def user_factory(platform_crds: Cluster) -> Iterator[UserFactory]:
    factory = UserFactory(platform_crds)
    try:
        yield factory
    finally:
        factory.cleanup()


_SERVERS: list[ApiServer] = []


@pytest.fixture(scope="session")
def apiserver(
    platform_crds: Cluster,
    redis_server: RedisServer,
    apiserver_env: dict[str, str],
    user_factory: UserFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiServer]:
    """The shared server: Redis, 10 tries, multipleLogin, the kubesphere client."""
    server = start_server(
        platform_crds,
        tmp_path_factory.mktemp("apiserver"),
        config_doc(redis_server),
        users=user_factory,
        env=apiserver_env,
    )
    _SERVERS.append(server)
    try:
        yield server
    finally:
        server.stop()
        _SERVERS.remove(server)


StartServer = Callable[..., ApiServer]


@pytest.fixture
def start_apiserver(
    platform_crds: Cluster,
    redis_server: RedisServer,
    apiserver_env: dict[str, str],
    user_factory: UserFactory,
    tmp_path: Path,
) -> Iterator[StartServer]:
    """``start_apiserver(doc=None, env=None, wait_path="/readyz", tls=None)``: another server (default:
    same config; ``tls`` as in ``start_server``)."""
    started: list[ApiServer] = []

    def start(
        doc: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        wait_path: str = "/readyz",
        tls: tuple[Path, Path, Path] | None = None,
    ) -> ApiServer:
        server = start_server(
            platform_crds,
            tmp_path,
            doc if doc is not None else config_doc(redis_server),
            users=user_factory,
            env={**apiserver_env, **(env or {})},
            wait_path=wait_path,
            tls=tls,
        )
        started.append(server)
        _SERVERS.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:  # the log-on-failure fixture forgets them once it has looked
            server.stop()


@pytest.fixture(autouse=True)
def _apiserver_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for server in list(_SERVERS):
            sys.stderr.write(f"\n---- {server.log.name} (tail) ----\n{server.log_text()[-6000:]}\n")
    _SERVERS[:] = [s for s in _SERVERS if s.proc.poll() is None]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


# -- the monitoring API: a real Prometheus and a ks-apiserver that asks it ----------------------------
GPU_KINDS = [{"resourceName": "nvidia.com/gpu", "resourceType": "GPU", "default": True}]


@dataclass
class Monitoring:
    """A ks-apiserver whose ``monitoring.endpoint`` is ``prometheus``, which scrapes it (as ``admin``)."""

    server: ApiServer
    prometheus: PrometheusServer
    admin: str
    password: str
    token: str

    def prometheus_query(self, expr: str, **params: str) -> dict[str, Any]:
        url = f"{self.prometheus.url}/api/v1/query"
        resp = requests.post(url, data={"query": expr, **params}, timeout=30)
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()["data"]
        return data


@dataclass
class ScrapingPrometheus:
    """The harness's Prometheus and the platform admin it scrapes ks-apiserver's /metrics as."""

    server: PrometheusServer
    scraper: str = field(default_factory=lambda: unique("prom-scraper"))
    password: str = field(default_factory=lambda: "P@88w0rd-" + secrets.token_hex(4))


@pytest.fixture(scope="session")
def prometheus(cluster: Cluster) -> Iterator[ScrapingPrometheus]:
    """Debian's Prometheus on loopback (data under .local/), scraping kube-apiserver, kube-scheduler and
    etcd of the local cluster every second, plus a ``ks-apiserver`` job whose targets come later."""
    local = LocalCluster()
    ports = ClusterState.load(local.state_file).ports
    found = ScrapingPrometheus(
        PrometheusServer(workdir=REPO / ".local" / f"prometheus-{uuid.uuid4().hex[:8]}")
    )
    server = found.server
    server.workdir.mkdir(parents=True)
    (server.workdir / "password").write_text(found.password)
    ks_job = {
        "job_name": "ks-apiserver",
        "basic_auth": {"username": found.scraper, "password_file": str(server.workdir / "password")},
        "file_sd_configs": [{"files": [str(server.targets_file("ks-apiserver"))], "refresh_interval": "1s"}],
    }
    server.jobs = [*local_cluster_jobs(local.dir, ports), ks_job]
    with server.start():
        yield found


@pytest.fixture(scope="session")
def monitoring(
    platform_crds: Cluster,
    redis_server: RedisServer,
    apiserver_env: dict[str, str],
    user_factory: UserFactory,
    prometheus: ScrapingPrometheus,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Monitoring]:
    extra = {"monitoring": {"endpoint": prometheus.server.url}, "gpu": {"kinds": GPU_KINDS}}
    server = start_server(
        platform_crds,
        tmp_path_factory.mktemp("monitoring"),
        config_doc(redis_server, extra=extra),
        users=user_factory,
        env=apiserver_env,
    )
    _SERVERS.append(server)
    try:
        admin, password = prometheus.scraper, prometheus.password
        server.make_user(admin, password, globalrole="platform-admin")
        prometheus.server.file_targets("ks-apiserver", [server.url.removeprefix("http://")])
        token = server.login(admin, password)
        yield Monitoring(server, prometheus.server, admin=admin, password=password, token=token)
    finally:
        server.stop()
        _SERVERS.remove(server)
