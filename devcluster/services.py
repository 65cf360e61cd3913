"""Real Redis, OpenLDAP and Prometheus on loopback, for tests, benchmarks and ``make up``.

Both are Debian's own daemons (``redis-server``, ``slapd``; ``make setup``
installs them through ``hack/system-deps.sh``), run as child processes on a free
port.  Tests use a temporary directory and stop them afterwards; ``make up``
passes a directory under ``.local/`` and ``detach=True`` so they outlive it
(``processes.stop_pidfile(workdir / "pid")`` ends them).  The LDAP directory is
``dc=kubesphere,dc=io`` with ``ou=Users`` and ``ou=Groups``, the tree the core role
configures; its manager is ``cn=admin,dc=kubesphere,dc=io``.  Prometheus (for the
monitoring API's tests and benchmark) loads the recording rules the monitoring role
installs and scrapes what exists locally: the control plane and the platform's servers.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster.processes import adopt

BASE_DN = "dc=kubesphere,dc=io"
MANAGER_DN = f"cn=admin,{BASE_DN}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; log {log}:\n{log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s; log {log}")


def _binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(f"{name} is not installed; run `make setup` (hack/system-deps.sh installs it)")


@dataclass
class _Daemon:
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ks-svc-")))
    proc: subprocess.Popen[bytes] | None = None
    #: Start in a new session so the daemon outlives this process (make up).
    detach: bool = False

    def _spawn(self, cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=self.detach
            )
        (self.workdir / "pid").write_text(str(proc.pid))
        if self.detach:  # stopped later through its pid file (processes.stop_pidfile), which reaps it
            adopt(proc)
        return proc

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> _Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class RedisServer(_Daemon):
    """``redis-server`` with a password, no persistence."""

    def start(self) -> RedisServer:
        log = self.workdir / "redis.log"
        conf = self.workdir / "redis.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\nrequirepass {self.password}\n"
            f'save ""\nappendonly no\ndir {self.workdir}\nlogfile {log}\n'
        )
        self.proc = self._spawn([_binary("redis-server"), str(conf)], self.workdir / "redis.out")
        _wait_port(self.port, self.proc, log, "redis-server")
        return self

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"


@dataclass
class Slapd(_Daemon):
    """``slapd`` with an mdb database for ``dc=kubesphere,dc=io``."""

    base_dn: str = BASE_DN
    manager_dn: str = MANAGER_DN

    def start(self) -> Slapd:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "slapd.log"
        schema = Path("/etc/ldap/schema")
        conf = self.workdir / "slapd.conf"
        conf.write_text(
            "\n".join(
                [
                    *(f"include {schema / n}.schema" for n in ("core", "cosine", "inetorgperson", "nis")),
                    f"pidfile {self.workdir / 'slapd.pid'}",
                    "modulepath /usr/lib/ldap",
                    "moduleload back_mdb",
                    "database mdb",
                    "maxsize 104857600",
                    f'suffix "{self.base_dn}"',
                    f'rootdn "{self.manager_dn}"',
                    f"rootpw {self.password}",
                    f"directory {data}",
                    "index objectClass eq",
                    "index uid eq",
                    "",
                ]
            )
        )
        url = f"ldap://127.0.0.1:{self.port}/"
        self.proc = self._spawn([_binary("slapd"), "-f", str(conf), "-h", url, "-d", "0"], log)
        _wait_port(self.port, self.proc, log, "slapd")
        self._seed()
        return self

    @contextlib.contextmanager
    def connect(self, dn: str | None = None, password: str | None = None) -> Iterator[Any]:
        """A bound ldap3 connection (the manager's unless told), always unbound afterwards.

        ldap3's own ``with`` leaves a connection that was bound on entry open.
        """
        import ldap3

        conn = ldap3.Connection(
            ldap3.Server("127.0.0.1", port=self.port), dn or self.manager_dn, password or self.password
        )
        try:
            conn.bind()
            yield conn
        finally:
            conn.unbind()

    def _seed(self) -> None:
        """The base entry and the two organisational units, as the openldap role creates them."""
        with self.connect() as conn:
            conn.add(self.base_dn, ["dcObject", "organization"], {"o": "kubesphere", "dc": "kubesphere"})
            for ou in ("Users", "Groups"):
                conn.add(f"ou={ou},{self.base_dn}", ["organizationalUnit"], {"ou": ou})
                if conn.result["result"] not in (0, 68):
                    raise RuntimeError(f"slapd seed ou={ou}: {conn.result}")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


#: The recording rules the monitoring role installs; the harness's Prometheus loads the same file.
RECORDING_RULES = Path(__file__).resolve().parents[1] / "roles/monitoring/files/recording-rules.yaml"


@dataclass
class PrometheusServer(_Daemon):
    """Debian's ``prometheus`` on loopback, scraping ``jobs`` every ``interval`` with the platform's rules.

    ``jobs`` are Prometheus ``scrape_configs`` entries (``local_cluster_jobs`` builds the
    control plane's).  ``file_targets(job, targets)`` points a job declared with
    ``file_sd_configs`` at targets known only later (a server started after Prometheus);
    Prometheus rereads the file within seconds.
    """

    jobs: list[dict[str, Any]] = field(default_factory=list)
    interval: str = "1s"

    def start(self) -> PrometheusServer:
        import yaml

        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": [str(RECORDING_RULES)],
            "scrape_configs": [
                {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{self.port}"]}]},
                *self.jobs,
            ],
        }
        conf = self.workdir / "prometheus.yml"
        conf.write_text(yaml.safe_dump(config, sort_keys=False))
        log = self.workdir / "prometheus.log"
        cmd = [
            _binary("prometheus"),
            f"--config.file={conf}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        self.proc = self._spawn(cmd, log)
        _wait_port(self.port, self.proc, log, "prometheus")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"prometheus did not become ready within 30s; log {log}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def targets_file(self, job: str) -> Path:
        return self.workdir / f"{job}-targets.json"

    def file_targets(self, job: str, targets: list[str]) -> None:
        path = self.targets_file(job)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": targets}]))
        tmp.replace(path)


def local_cluster_jobs(cluster_dir: Path, ports: dict[str, int]) -> list[dict[str, Any]]:
    """Scrape jobs for the local control plane: kube-apiserver and kube-scheduler with the admin
    client certificate of the cluster's PKI (``cluster_dir/pki``), etcd's plain-HTTP /metrics."""
    pki = cluster_dir / "pki"
    client_tls = {"cert_file": str(pki / "admin.crt"), "key_file": str(pki / "admin.key")}
    return [
        {
            "job_name": "apiserver",
            "scheme": "https",
            "tls_config": {"ca_file": str(pki / "ca.crt"), **client_tls},
            "static_configs": [{"targets": [f"127.0.0.1:{ports['apiserver']}"]}],
        },
        {
            "job_name": "kube-scheduler",
            "scheme": "https",
            # The scheduler serves a self-signed certificate it made at start.
            "tls_config": {"insecure_skip_verify": True, **client_tls},
            "static_configs": [{"targets": [f"127.0.0.1:{ports['scheduler']}"]}],
        },
        {"job_name": "etcd", "static_configs": [{"targets": [f"127.0.0.1:{ports['etcd']}"]}]},
    ]
