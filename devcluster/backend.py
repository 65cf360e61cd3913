"""``make up``'s third part: ks-controller-manager and ks-apiserver as local processes.

The core role deploys both into the cluster, but KWOK pods run no containers,
so on the local cluster they run beside it, out of cluster, exactly as their
Deployments would run them: the ``kubesphere.yaml`` the installer rendered into
the ``kubesphere-config`` ConfigMap, and the secrets as environment variables
from the Secrets the installer generated.  Two things differ, both because
cluster Services are not reachable from the host: when the configuration names
the platform's Redis or OpenLDAP, a local ``redis-server`` / ``slapd`` (with the
same password as the cluster Secret) stands in for them, a local ``prometheus``
(scraping the local control plane, with the monitoring role's recording rules)
for the monitoring endpoint, and the configuration is rewritten to point at
loopback.  Secrets go to the processes' environment
only; nothing here prints or writes them to disk.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from devcluster.cluster import LocalCluster
from devcluster.cluster import State as ClusterState
from devcluster.processes import http_ok, pid_alive, spawn, stop_pidfile, tail
from devcluster.services import PrometheusServer, RedisServer, Slapd, free_port, local_cluster_jobs
from devcluster.settings import REPO_ROOT

SYSTEM_NS = "kubesphere-system"
#: Where ks-apiserver listens out of cluster (as KubeSphere's does) and the controller manager's metrics.
APISERVER_BIND = "127.0.0.1:9090"
CONTROLLER_LISTEN = "127.0.0.1:8080"


@dataclass(frozen=True)
class Paths:
    base: Path

    @property
    def dir(self) -> Path:
        return self.base / "backend"

    @property
    def config(self) -> Path:
        return self.dir / "kubesphere.yaml"

    def pidfile(self, name: str) -> Path:
        return self.dir / f"{name}.pid"

    def log(self, name: str) -> Path:
        return self.base / "logs" / f"{name}.log"


def _secret(core: client.CoreV1Api, name: str, key: str) -> str:
    try:
        secret = core.read_namespaced_secret(name, SYSTEM_NS)
    except client.ApiException as exc:
        if exc.status == 404:
            return ""
        raise
    value = (secret.data or {}).get(key)
    return base64.b64decode(value).decode() if value else ""


def prepare(api: client.ApiClient, paths: Paths) -> dict[str, str]:
    """Write the local kubesphere.yaml, start stand-ins for Redis/OpenLDAP; return the env."""
    core = client.CoreV1Api(api)
    cm = core.read_namespaced_config_map("kubesphere-config", SYSTEM_NS)
    config: dict[str, Any] = yaml.safe_load((cm.data or {})["kubesphere.yaml"]) or {}
    env = {"KUBESPHERE_JWT_SECRET": _secret(core, "kubesphere-secret", "secret")}
    paths.dir.mkdir(parents=True, exist_ok=True)
    cache = config.get("cache") or {}
    if cache.get("type") == "redis":
        password = _secret(core, "redis-secret", "auth")
        workdir = paths.dir / "redis"
        stop_pidfile(workdir / "pid")
        workdir.mkdir(exist_ok=True)
        redis = RedisServer(password=password, workdir=workdir, detach=True, port=free_port()).start()
        cache.setdefault("options", {}).update({"host": "127.0.0.1", "port": redis.port})
        env["KUBESPHERE_CACHE_PASSWORD"] = password
        print(f"[backend] redis-server on 127.0.0.1:{redis.port} stands in for the platform's Redis")
    ldap = config.get("ldap")
    if ldap:
        password = _secret(core, "openldap-secret", "password")
        workdir = paths.dir / "slapd"
        stop_pidfile(workdir / "pid")
        workdir.mkdir(exist_ok=True)
        slapd = Slapd(password=password, workdir=workdir, detach=True, port=free_port()).start()
        ldap["host"] = slapd.host
        env["KUBESPHERE_LDAP_PASSWORD"] = password
        print(f"[backend] slapd on {slapd.host} stands in for the platform's OpenLDAP")
    monitoring = config.get("monitoring")
    if isinstance(monitoring, dict) and monitoring.get("endpoint"):
        local = LocalCluster()
        jobs = local_cluster_jobs(local.dir, ClusterState.load(local.state_file).ports)
        workdir = paths.dir / "prometheus"
        stop_pidfile(workdir / "pid")
        workdir.mkdir(exist_ok=True)
        prom = PrometheusServer(
            workdir=workdir, detach=True, port=free_port(), jobs=jobs, interval="15s"
        ).start()
        monitoring["endpoint"] = prom.url
        print(
            f"[backend] prometheus on {prom.url} stands in for the platform's (it scrapes the control plane)"
        )
    paths.config.write_text(
        "# Written by `make up` from ConfigMap kubesphere-system/kubesphere-config;\n"
        "# Redis, OpenLDAP and Prometheus point at the local stand-ins.  No secrets here.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    return env


def _start(name: str, args: list[str], env: dict[str, str], paths: Paths) -> int:
    pidfile, log = paths.pidfile(name), paths.log(name)
    _stop(name, paths)  # the configuration may have changed since the last `make up`
    exe = Path(sys.executable).parent / name
    pid = spawn([str(exe), *args], log, env={**os.environ, **env}, cwd=REPO_ROOT)
    pidfile.write_text(str(pid))
    print(f"[backend] started {name} (pid {pid}), log: {log}")
    return pid


def _wait_http(name: str, url: str, pid: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise RuntimeError(f"{name} exited; log: {log}\n{tail(log, 30)}")
        if http_ok(url):
            return
        time.sleep(0.3)
    raise RuntimeError(f"{name} was not ready at {url} within {timeout:.0f}s; log: {log}\n{tail(log, 30)}")


def _admin_login(api: client.ApiClient, url: str, timeout: float) -> str:
    """Log in as admin with the generated password; the controller must have hashed it first."""
    password = _secret(client.CoreV1Api(api), "kubesphere-secret", "initAdminPassword")
    form = urllib.parse.urlencode(
        {
            "grant_type": "password",
            "username": "admin",
            "password": password,
            "client_id": "kubesphere",
            "client_secret": "kubesphere",
        }
    ).encode()
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        request = urllib.request.Request(
            f"{url}/oauth/token",
            data=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                token = json.load(resp).get("access_token", "")
                if token:
                    return "admin logged in: /oauth/token answered with a bearer token"
        except urllib.error.HTTPError as exc:
            last = f"{exc.code} {exc.read().decode(errors='replace')[:200]}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"admin could not log in within {timeout:.0f}s: {last}")


def up(
    api: client.ApiClient,
    kubeconfig: Path,
    base: Path,
    *,
    timeout: float = 120,
    apiserver_bind: str = APISERVER_BIND,
    controller_listen: str = CONTROLLER_LISTEN,
) -> list[str]:
    """Start both backends, wait until admin can log in; return lines for the summary."""
    paths = Paths(base)
    env = prepare(api, paths)
    url = f"http://{apiserver_bind}"
    common = ["--config", str(paths.config), "--kubeconfig", str(kubeconfig)]
    cm_pid = _start("ks-controller-manager", [*common, "--listen", controller_listen], env, paths)
    api_pid = _start("ks-apiserver", [*common, "--bind", apiserver_bind], env, paths)
    _wait_http("ks-controller-manager", f"http://{controller_listen}/readyz", cm_pid,
               paths.log("ks-controller-manager"), timeout)  # fmt: skip
    _wait_http("ks-apiserver", f"{url}/readyz", api_pid, paths.log("ks-apiserver"), timeout)
    login = _admin_login(api, url, timeout)
    jsonpath = "{.data.initAdminPassword}"
    get_pw = f"kubectl -n {SYSTEM_NS} get secret kubesphere-secret -o jsonpath='{jsonpath}' | base64 -d"
    return [
        f"ks-apiserver:          {url}  (OpenAPI page: {url}/docs)",
        f"  {login}",
        f"  user admin, password: {get_pw}",
        f"ks-controller-manager: http://{controller_listen}/metrics",
        f"backend logs:          {paths.log('ks-apiserver')}, {paths.log('ks-controller-manager')}",
    ]


def _stop(name: str, paths: Paths) -> bool:
    return stop_pidfile(paths.pidfile(name)) is not None


def down(base: Path) -> None:
    paths = Paths(base)
    for name in ("ks-apiserver", "ks-controller-manager"):
        if _stop(name, paths):
            print(f"[backend] stopped {name}")
    for daemon in ("redis", "slapd", "prometheus"):
        if stop_pidfile(paths.dir / daemon / "pid"):
            print(f"[backend] stopped the local {daemon}")
