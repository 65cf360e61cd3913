"""The real kubectl through ks-apiserver over TLS, with a KubeSphere token as its credential.

kubectl (client-go) sends a bearer token over HTTPS only, so ks-apiserver serves TLS here
(``--tls-cert-file``/``--tls-private-key-file``, a certificate from the local cluster's CA).  Every
call is authorized by KubeSphere's rules for the token's user, then proxied; ``auth can-i`` and
``auth whoami`` are answered about that user, not about ks-apiserver's own account.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.apiserver.conftest import ApiServer
from tests.conftest import Cluster
from tests.console.support import Site, forward_pod
from tests.services import free_port

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def kubectl_as(
    live: Site, second_server: ApiServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """A kubeconfig per user of the site: ks-apiserver's HTTPS address, the cluster CA, the user's token."""
    folder = tmp_path_factory.mktemp("kubeconfigs")
    found = {}
    for who, token in live.tokens.items():
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "ks",
                    "cluster": {"server": second_server.url, "certificate-authority": second_server.verify},
                }
            ],
            "users": [{"name": who, "user": {"token": token}}],
            "contexts": [{"name": who, "context": {"cluster": "ks", "user": who, "namespace": live.ns}}],
            "current-context": who,
        }
        path = folder / f"{who}.yaml"
        path.write_text(yaml.safe_dump(doc))
        found[who] = path
    return found


def kubectl(
    cluster: Cluster,
    kubeconfig: Path,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.kubectl), f"--kubeconfig={kubeconfig}", *args],
        input=stdin, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **env} if env else None,
    )  # fmt: skip


def test_get(live: Site, kubectl_as: dict[str, Path]) -> None:
    """A project member lists the project's pods; a user outside it is refused by KubeSphere's rules."""
    got = kubectl(live.cluster, kubectl_as["viewer"], "get", "pods", "-o", "name")
    assert got.returncode == 0, got.stderr
    assert "pod/term" in got.stdout.split()
    other = kubectl(live.cluster, kubectl_as["wsadmin"], "get", "secrets", "-n", "kube-system")
    assert other.returncode != 0 and "forbidden" in other.stderr.lower(), other


def test_apply_server_side(live: Site, kubectl_as: dict[str, Path]) -> None:
    """The operator applies a ConfigMap server-side (kubectl is its field manager); the viewer may not."""
    name = f"cm-{uuid.uuid4().hex[:6]}"
    manifest = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                               "data": {"k": "v1"}})  # fmt: skip
    denied = kubectl(live.cluster, kubectl_as["viewer"], "apply", "--server-side", "-f", "-", stdin=manifest)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied
    applied = kubectl(
        live.cluster, kubectl_as["regular"], "apply", "--server-side", "-f", "-", stdin=manifest
    )
    assert applied.returncode == 0, applied.stderr
    assert "serverside-applied" in applied.stdout
    cm = client.CoreV1Api(live.cluster.api).read_namespaced_config_map(name, live.ns)
    assert cm.data == {"k": "v1"}
    assert any(f.manager == "kubectl" and f.operation == "Apply" for f in cm.metadata.managed_fields or [])


def test_get_watch(live: Site, kubectl_as: dict[str, Path]) -> None:
    """``kubectl get --watch`` prints a Deployment created while it watches."""
    name = f"w-{uuid.uuid4().hex[:6]}"
    apps = client.AppsV1Api(live.cluster.api)
    with subprocess.Popen(
        [str(live.cluster.kubectl), f"--kubeconfig={kubectl_as['viewer']}", "get", "deployments",
         "--watch", "-o", "name", "--request-timeout=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:  # fmt: skip
        _watch_sees(proc, apps, live.ns, name)


def _watch_sees(proc: subprocess.Popen[str], apps: client.AppsV1Api, namespace: str, name: str) -> None:
    """Create the Deployment, then read ``proc``'s lines until it prints it (bounded by the test timeout)."""
    try:
        body = {"metadata": {"name": name}, "spec": {"replicas": 0, "selector": {"matchLabels": {"a": name}},
                "template": {"metadata": {"labels": {"a": name}},
                             "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}  # fmt: skip
        apps.create_namespaced_deployment(namespace, body)
        assert proc.stdout is not None
        for line in proc.stdout:  # the watch itself never ends
            if line.strip() == f"deployment.apps/{name}":
                break
        else:
            raise AssertionError(
                f"the watch ended without {name}: {proc.stderr.read() if proc.stderr else ''}"
            )
    finally:
        proc.terminate()
        proc.wait(10)
        apps.delete_namespaced_deployment(name, namespace)


def test_exec(live: Site, kubectl_as: dict[str, Path]) -> None:
    """``kubectl exec`` runs the command (KWOK runs it locally), with stdin; the viewer may not exec."""
    ran = kubectl(live.cluster, kubectl_as["regular"], "exec", "term", "--", "sh", "-c", "echo out-$((6*7))")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "out-42\n"
    line = f"in-{uuid.uuid4().hex[:6]}"
    typed = kubectl(
        live.cluster, kubectl_as["regular"], "exec", "-i", "term", "--",
        "sh", "-c", 'read -r l; echo "got:$l"',
        stdin=line + "\n",
    )  # fmt: skip
    assert typed.returncode == 0, typed.stderr
    assert typed.stdout == f"got:{line}\n"
    denied = kubectl(live.cluster, kubectl_as["viewer"], "exec", "term", "--", "true")
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied


def test_exec_over_spdy(live: Site, kubectl_as: dict[str, Path]) -> None:
    """kubectl's older transport (SPDY/3.1 upgrade of a POST) goes through the same splice."""
    spdy = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
    ran = kubectl(live.cluster, kubectl_as["regular"], "exec", "term", "--", "echo", "over-spdy", env=spdy)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "over-spdy\n"
    denied = kubectl(live.cluster, kubectl_as["viewer"], "exec", "term", "--", "true", env=spdy)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    """A TCP server on loopback that answers each line with ``pong:<line>``; yields its port."""

    class Echo(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(b"pong:" + line)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True  # a connection KWOK keeps open must not hold the test up
        block_on_close = False

    with Server(("127.0.0.1", 0), Echo) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()


def test_port_forward(live: Site, kubectl_as: dict[str, Path]) -> None:
    """``kubectl port-forward`` through ks-apiserver reaches what the pod's port leads to (KWOK: a local
    server); a project viewer may not forward (create pods/portforward)."""
    with echo_server() as target:
        forward_pod(live.cluster.api, live.ns, "term", port=8080, target=target)
        local = free_port()
        argv = [str(live.cluster.kubectl), f"--kubeconfig={kubectl_as['regular']}",
                "port-forward", "pod/term", f"{local}:8080"]  # fmt: skip
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            try:
                assert proc.stdout is not None
                first = proc.stdout.readline()
                assert "Forwarding from 127.0.0.1" in first, first + (
                    proc.stderr.read() if proc.stderr else ""
                )
                with socket.create_connection(("127.0.0.1", local), timeout=30) as conn:
                    conn.sendall(b"ping\n")
                    assert conn.makefile("rb").readline() == b"pong:ping\n"
            finally:
                proc.terminate()
                proc.wait(10)
    denied = kubectl(live.cluster, kubectl_as["viewer"], "port-forward", "pod/term", f"{free_port()}:8080",
                     "--pod-running-timeout=5s")  # fmt: skip
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied


def test_auth_can_i_answers_for_the_user(live: Site, kubectl_as: dict[str, Path]) -> None:
    """``auth can-i`` is KubeSphere's decision for the token's user (not ks-apiserver's own account)."""

    def can(who: str, *args: str) -> str:
        return kubectl(live.cluster, kubectl_as[who], "auth", "can-i", *args).stdout.strip()

    assert can("viewer", "list", "pods") == "yes"
    assert can("viewer", "create", "pods/exec") == "no"
    assert can("regular", "create", "pods/exec") == "yes"
    assert can("viewer", "list", "secrets", "-n", "kube-system") == "no"
    assert can("admin", "list", "secrets", "-n", "kube-system") == "yes"
    who = kubectl(
        live.cluster, kubectl_as["viewer"], "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"
    )
    assert who.returncode == 0, who.stderr
    assert who.stdout == live.users["viewer"]
