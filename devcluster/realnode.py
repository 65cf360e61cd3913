"""A real node, ``real-node-0``, beside the KWOK nodes: containerd, kubelet and kube-proxy.

Off unless asked for with ``KS_REAL_NODE=1`` (``make up-real`` and the real-node
test suite set it); with it off the cluster is exactly the KWOK one.  The node
runs real containers with runc (Debian's containerd and CNI bridge plugins, our
own kubelet and kube-proxy built with the other binaries), is tainted
``ks-devcluster/real-node=true:NoSchedule`` and labelled the same, so only pods
that tolerate and select it land there.  No registry is reachable: images come
from podman's local store (``make image``), imported into containerd's
``k8s.io`` namespace under the names the manifests use; the pod sandbox image is
a static pause binary built here.

Pods reach kube-apiserver as the ``kubernetes`` Service: its EndpointSlice
points at a forwarder on the node's address (kube-apiserver itself stays on
loopback), and kube-proxy (iptables mode) does the rest.  There is no cluster
DNS.  Only one real node runs per machine (kube-proxy's iptables chains and the
bridge are machine-wide); ``/run/ks-devcluster-real-node`` names its owner.

Everything lives in ``<state>/real-node/``; ``down()`` stops it and takes back
what it left on the host (see ``devcluster/hoststate.py``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client

from devcluster import hoststate, image, kube, nodeconfig
from devcluster.build import ensure_node_binaries, node_binary
from devcluster.nodeconfig import NODE_KEY, NODE_NAME, NodeLayout
from devcluster.pki import ensure_client_cert
from devcluster.processes import (
    ClusterError,
    Component,
    free_port,
    http_ok,
    pid_alive,
    start,
    stop,
    terminate,
)
from devcluster.settings import JsonState

LOCK = Path("/run/ks-devcluster-real-node")
SLICE = "kubernetes-real-node"
PORT_NAMES = ("forwarder", "kubelet", "kubelet_healthz", "proxy_healthz", "proxy_metrics")
TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "conntrack", "podman", "ip")


def enabled() -> bool:
    """The one switch: ``KS_REAL_NODE=1``."""
    return os.environ.get("KS_REAL_NODE", "").strip().lower() in ("1", "true", "yes", "on")


def placement() -> dict[str, Any]:
    """What a pod spec needs to run on the real node (and nowhere else)."""
    return {
        "nodeSelector": {NODE_KEY: "true"},
        "tolerations": [{"key": NODE_KEY, "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
    }


def host_ip() -> str:
    """The host's address on its default route (``KS_REAL_NODE_IP`` overrides)."""
    env = os.environ.get("KS_REAL_NODE_IP")
    if env:
        return env
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))  # TEST-NET-2: nothing is sent
        except OSError as exc:
            raise ClusterError(f"real node: no default route to take an address from ({exc})") from exc
        address = str(s.getsockname()[0])
    if address.startswith("127."):
        raise ClusterError("real node: the host has no non-loopback address; set KS_REAL_NODE_IP")
    return address


@dataclass
class NodeState(JsonState):
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    node_ip: str = ""
    #: podman image id of each image imported into containerd, by name.
    images: dict[str, str] = field(default_factory=dict)


class RealNode:
    def __init__(self, cluster_dir: Path, *, pki: Path, kubeconfig: Path, logs: Path) -> None:
        self.cluster_dir = cluster_dir
        self.dir = cluster_dir / "real-node"
        self.pki, self.kubeconfig, self.logs = pki, kubeconfig, logs
        self.state_file = self.dir / "state.json"
        self.snapshot_file = self.dir / "host-before.json"

    # -- probes -------------------------------------------------------------------
    def running(self) -> bool:
        st = NodeState.load(self.state_file)
        return bool(st.pids) and all(pid_alive(p) for p in st.pids.values()) and self._kubelet_ok(st)

    def _kubelet_ok(self, st: NodeState) -> bool:
        return http_ok(f"http://127.0.0.1:{st.ports['kubelet_healthz']}/healthz")

    def _layout(self, st: NodeState) -> NodeLayout:
        return NodeLayout(dir=self.dir, node_ip=st.node_ip, ports=st.ports)

    def ctr(self, *args: str, st: NodeState | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
        layout = self._layout(st or NodeState.load(self.state_file))
        cmd = ["ctr", "--address", str(layout.containerd_socket), "--namespace", "k8s.io", *args]
        return subprocess.run(cmd, capture_output=True, text=True, **kw)

    # -- lifecycle ----------------------------------------------------------------
    def up(self, *, apiserver_port: int, log: bool = True) -> None:
        say = print if log else (lambda *_a, **_k: None)
        if self.running():
            self.load_images(say=say)
            self._publish(NodeState.load(self.state_file))
            say(f"[real-node] {NODE_NAME} already running")
            return
        self.down(log=False)  # whatever a previous run left half-started
        missing = [t for t in TOOLS if shutil.which(t) is None]
        if missing:
            raise ClusterError(f"real node: missing {', '.join(missing)} (make system-deps installs them)")
        self._lock()
        binaries = ensure_node_binaries()
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        hoststate.Snapshot.take().save(self.snapshot_file)
        st = NodeState(ports={n: free_port() for n in PORT_NAMES}, node_ip=host_ip())
        st.save(self.state_file)
        layout = self._layout(st)
        self._write_files(layout, apiserver_port)
        hoststate.create_cgroups(nodeconfig.CGROUP_ROOT)
        try:
            for comp in self._components(binaries, layout, apiserver_port)[:2]:
                say(f"[real-node] starting {comp.name}")
                st.pids[comp.name] = start(comp, self.logs)
                st.save(self.state_file)
            self._import_pause(binaries["pause"], st, say)
            self.load_images(st=st, say=say)
            for comp in self._components(binaries, layout, apiserver_port)[2:]:
                say(f"[real-node] starting {comp.name}")
                st.pids[comp.name] = start(comp, self.logs)
                st.save(self.state_file)
            self._publish(st)
            self._wait_ready(timeout=120)
        except Exception as exc:
            self.down(log=False)
            if isinstance(exc, ClusterError):
                raise
            raise ClusterError(f"real node setup failed: {exc}; logs: {self.logs}/real-node-*.log") from exc
        say(f"[real-node] {NODE_NAME} Ready in {time.monotonic() - started:.1f}s at {st.node_ip}")

    def _lock(self) -> None:
        try:
            owner = Path(LOCK.read_text().strip())
        except FileNotFoundError:
            owner = None
        if owner and owner != self.dir:
            other = NodeState.load(owner / "state.json")
            if any(pid_alive(p) for p in other.pids.values()):
                raise ClusterError(
                    f"real node: another one runs on this machine ({owner}); stop it with its make down"
                )
        LOCK.write_text(f"{self.dir}\n")

    def _write_files(self, layout: NodeLayout, apiserver_port: int) -> None:
        for d in (layout.cni_conf_dir, layout.cni_ipam_dir, layout.kubelet_root, layout.pod_logs):
            d.mkdir(parents=True, exist_ok=True)
        layout.config("containerd.toml").write_text(nodeconfig.containerd_config(layout))
        (layout.cni_conf_dir / "10-ks-real-node.conflist").write_text(nodeconfig.cni_config(layout))
        layout.config("kubelet.yaml").write_text(nodeconfig.kubelet_config(layout, ca=self.pki / "ca.crt"))
        layout.config("kube-proxy.yaml").write_text(nodeconfig.kube_proxy_config(layout))
        server = f"https://127.0.0.1:{apiserver_port}"
        for name, cn, org in (
            ("kubelet", f"system:node:{NODE_NAME}", "system:nodes"),
            ("kube-proxy", "system:kube-proxy", None),
        ):
            crt, key = ensure_client_cert(self.pki, f"real-node-{name}", cn=cn, org=org)
            kube.write_kubeconfig(layout.kubeconfig(name), server=server, pki=self.pki, cert=crt, key=key)

    def _components(self, b: dict[str, Path], layout: NodeLayout, apiserver_port: int) -> list[Component]:
        p = layout.ports
        socket_path = layout.containerd_socket
        env_path = f"PATH={os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
        return [
            Component(
                "real-node-forwarder",
                [
                    sys.executable,
                    "-m",
                    "devcluster.forward",
                    "--listen",
                    f"{layout.node_ip}:{p['forwarder']}",
                    "--to",
                    f"127.0.0.1:{apiserver_port}",
                    f"--state={self.dir}",
                ],
                p["forwarder"],
                lambda: _tcp_open(layout.node_ip, p["forwarder"]),
            ),
            Component(
                "real-node-containerd",
                ["env", env_path, "containerd", "--config", str(layout.config("containerd.toml"))],
                None,
                lambda: socket_path.exists() and self._ctr_ok(layout),
                timeout=60,
            ),
            Component(
                "real-node-kubelet",
                [
                    str(b["kubelet"]),
                    f"--config={layout.config('kubelet.yaml')}",
                    f"--kubeconfig={layout.kubeconfig('kubelet')}",
                    f"--root-dir={layout.kubelet_root}",
                    f"--cert-dir={layout.kubelet_root / 'pki'}",
                    f"--hostname-override={NODE_NAME}",
                    f"--node-ip={layout.node_ip}",
                    f"--node-labels={NODE_KEY}=true",
                    "--v=1",
                ],
                None,
                lambda: http_ok(f"http://127.0.0.1:{p['kubelet_healthz']}/healthz"),
                timeout=90,
            ),
            Component(
                "real-node-kube-proxy",
                [str(b["kube-proxy"]), f"--config={layout.config('kube-proxy.yaml')}", "--v=1"],
                None,
                lambda: _tcp_open("127.0.0.1", p["proxy_healthz"]),
                timeout=60,
            ),
        ]

    def _ctr_ok(self, layout: NodeLayout) -> bool:
        cmd = ["ctr", "--address", str(layout.containerd_socket), "version"]
        return subprocess.run(cmd, capture_output=True).returncode == 0

    # -- images -------------------------------------------------------------------
    def _import(self, ref: str, st: NodeState) -> None:
        with tempfile.TemporaryDirectory(dir=self.dir) as tmp:
            archive = Path(tmp) / "image.tar"
            save = subprocess.run(
                ["podman", "save", "--format", "docker-archive", "--output", str(archive), ref],
                env=image.podman_env(), capture_output=True, text=True,
            )  # fmt: skip
            if save.returncode != 0:
                raise ClusterError(f"podman save {ref} failed: {save.stderr.strip()}")
            # Unpacked now (into the overlayfs snapshotter), so the first pod does not wait for it.
            out = self.ctr("images", "import", str(archive), st=st)
            if out.returncode != 0:
                raise ClusterError(f"importing {ref} into containerd failed: {out.stderr.strip()}")

    def _podman_id(self, ref: str) -> str | None:
        out = subprocess.run(
            ["podman", "image", "inspect", "--format", "{{.Id}}", ref],
            env=image.podman_env(), capture_output=True, text=True,
        )  # fmt: skip
        return out.stdout.strip() if out.returncode == 0 else None

    def _import_pause(self, pause: Path, st: NodeState, say: Any) -> None:
        ref = nodeconfig.PAUSE_IMAGE
        if self._podman_id(ref) is None:
            with tempfile.TemporaryDirectory() as tmp:
                shutil.copy2(pause, Path(tmp) / "pause")
                (Path(tmp) / "Containerfile").write_text(
                    'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n'
                )
                subprocess.run(
                    ["podman", "build", "--network=host", "--tag", ref, tmp],
                    env=image.podman_env(),
                    capture_output=True,
                    check=True,
                )
        self._load(ref, st, say)

    def _load(self, ref: str, st: NodeState, say: Any) -> None:
        podman_id = self._podman_id(ref)
        if podman_id is None:
            say(f"[real-node] {ref} is not in podman's store (make image builds it); its pods cannot start")
            return
        if st.images.get(ref) == podman_id:
            return
        started = time.monotonic()
        self._import(ref, st)
        st.images[ref] = podman_id
        st.save(self.state_file)
        say(f"[real-node] imported {ref} into containerd in {time.monotonic() - started:.1f}s")

    def load_images(self, *, st: NodeState | None = None, say: Any = print) -> None:
        """Import the project image (again, if podman has a newer build) under its manifest name."""
        self._load(image.image_ref(), st or NodeState.load(self.state_file), say)

    # -- the API side ---------------------------------------------------------------
    def _publish(self, st: NodeState) -> None:
        body = nodeconfig.kubernetes_endpoint_slice(self._layout(st))
        with kube.api_client(self.kubeconfig) as api:
            disc = client.DiscoveryV1Api(api)
            try:
                disc.replace_namespaced_endpoint_slice(SLICE, "default", body)  # type: ignore[arg-type]
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
                disc.create_namespaced_endpoint_slice("default", body)  # type: ignore[arg-type]

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with kube.api_client(self.kubeconfig) as api:
            core = client.CoreV1Api(api)
            while time.monotonic() < deadline:
                try:
                    node = core.read_node(NODE_NAME)
                except client.ApiException as exc:
                    if exc.status != 404:
                        raise
                else:
                    conditions = (node.status.conditions if node.status else None) or []
                    if any(c.type == "Ready" and c.status == "True" for c in conditions):
                        return
                time.sleep(0.5)
        raise ClusterError(
            f"{NODE_NAME} was not Ready within {timeout:.0f}s; log: {self.logs}/real-node-kubelet.log"
        )

    def _unpublish(self) -> None:
        """Remove the Node and the EndpointSlice, if kube-apiserver still answers."""
        if not self.kubeconfig.exists():
            return
        with kube.api_client(self.kubeconfig) as api:
            api.configuration.retries = 0
            core, disc = client.CoreV1Api(api), client.DiscoveryV1Api(api)
            try:
                deletes: list[Callable[[], object]] = [
                    lambda: core.delete_node(NODE_NAME, _request_timeout=5),
                    lambda: disc.delete_namespaced_endpoint_slice(SLICE, "default", _request_timeout=5),
                ]
                for delete in deletes:
                    try:
                        delete()
                    except client.ApiException as exc:
                        if exc.status != 404:
                            raise
            except (urllib3.exceptions.HTTPError, OSError):
                pass  # the control plane is gone already: nothing to undo there

    def down(self, *, log: bool = True) -> list[str]:
        """Stop the node and remove every trace of it, on the host and in the cluster."""
        say = print if log else (lambda *_a, **_k: None)
        if not self.dir.exists():
            return []
        st = NodeState.load(self.state_file)
        self._unpublish()
        # kubelet first (it would restart containers), then whatever runs in the pods' cgroups
        # (the containers), then every other process of this directory: containerd, its
        # shims (which exit with their containers), kube-proxy, the forwarder.
        for name in ("real-node-kubelet", "real-node-kube-proxy"):
            if name in st.pids:
                terminate(st.pids[name], grace=10)
        killed = hoststate.kill_cgroups(nodeconfig.CGROUP_ROOT)
        stopped = stop(st.pids, self.dir)
        proxy = node_binary("kube-proxy")
        if st.ports and proxy.is_file():
            subprocess.run([str(proxy), "--cleanup"], capture_output=True, timeout=60)
        left = hoststate.unmount_under(self.dir)
        subprocess.run(["ip", "link", "delete", nodeconfig.BRIDGE], capture_output=True)
        hoststate.remove_cgroups(nodeconfig.CGROUP_ROOT)
        before = hoststate.Snapshot.load(self.snapshot_file)
        removed = []
        if before is not None:
            removed += hoststate.remove_new_chains(before)
            removed += hoststate.remove_new_paths(before)
        if left:
            raise ClusterError(f"real node: could not unmount {', '.join(map(str, left))}; {self.dir} kept")
        shutil.rmtree(self.dir, ignore_errors=True)
        if LOCK.exists() and LOCK.read_text().strip() == str(self.dir):
            LOCK.unlink()
        if stopped or killed:
            say(f"[real-node] stopped {NODE_NAME} ({killed} container processes, {len(removed)} host traces)")
        return stopped


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
