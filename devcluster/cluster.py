"""The local control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and a KWOK controller with fake nodes, all as local processes.

``up()`` is idempotent: a healthy running cluster is reused as it is; anything
half-started is stopped and started again.  ``down()`` stops every process.
"""

from __future__ import annotations

import shutil
import ssl
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from devcluster import kube, realnode
from devcluster.build import ensure_binaries, kwok_crd_dir, kwok_stage_dir
from devcluster.pki import ensure_pki
from devcluster.processes import (
    ClusterError,
    Component,
    free_port,
    http_ok,
    pid_alive,
    port_is_free,
    start,
    stop,
)
from devcluster.settings import JsonState, Versions, load_versions, state_dir

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.0/16"
#: Bumped when the control plane's flags change, so a running older cluster is restarted.
REVISION = 3
PORT_NAMES = ("etcd", "etcd_peer", "apiserver", "controller_manager", "scheduler", "kwok")
#: KWOK's Exec and PortForward objects (one per pod, in the pod's namespace) say what a container's
#: exec runs (a local command) and where its forwarded ports lead (a local address).  Only pods that
#: have one can be exec'd into or forwarded to; nothing is configured by default.
KWOK_CRDS = ("Exec", "PortForward")
KWOK_STAGES = (
    "node/fast/node-initialize",
    "node/heartbeat-with-lease/node-heartbeat-with-lease",
    "pod/fast/pod-ready",
    "pod/fast/pod-complete",
    "pod/fast/pod-delete",
    "volume/fast/pvc-provision",
    "volume/fast/pvc-delete",
    "volume/fast/pv-bind",
    "volume/fast/pv-delete",
)


@dataclass
class State(JsonState):
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    revision: int = 0


@dataclass(frozen=True)
class ClusterInfo:
    kubeconfig: Path
    server: str
    state_dir: Path
    reused: bool


class LocalCluster:
    def __init__(self, state: Path | None = None, versions: Versions | None = None) -> None:
        self.dir = (state or state_dir()).resolve()
        self.versions = versions or load_versions()
        self.pki = self.dir / "pki"
        self.logs = self.dir / "logs"
        self.kubeconfig = self.dir / "kubeconfig"
        self.state_file = self.dir / "state.json"
        self.real_node = realnode.RealNode(self.dir, pki=self.pki, kubeconfig=self.kubeconfig, logs=self.logs)

    # -- probes -----------------------------------------------------------------
    def _client_tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _apiserver_ready(self, port: int) -> bool:
        return http_ok(f"https://127.0.0.1:{port}/readyz", context=self._client_tls())

    def running(self) -> State | None:
        """The state of a healthy running cluster of the pinned versions, else None."""
        st = State.load(self.state_file)
        if not st.pids or st.versions != asdict(self.versions) or st.revision != REVISION:
            return None
        if not all(pid_alive(pid) for pid in st.pids.values()):
            return None
        if not self.kubeconfig.exists() or not self._apiserver_ready(st.ports["apiserver"]):
            return None
        return st

    # -- lifecycle --------------------------------------------------------------
    def up(self, *, nodes: int = 3, log: bool = True, real_node: bool | None = None) -> ClusterInfo:
        """Start or reuse the cluster; with ``real_node`` (default: ``KS_REAL_NODE=1``) add the real node."""
        say = print if log else (lambda *_a, **_k: None)
        with_real_node = realnode.enabled() if real_node is None else real_node
        binaries = ensure_binaries(self.versions)
        st = self.running()
        if st is not None:
            server = f"https://127.0.0.1:{st.ports['apiserver']}"
            kube.ensure_cluster_objects(self.kubeconfig, nodes=nodes)
            say(f"[cluster] already running at {server}")
            if with_real_node:
                self.real_node.up(apiserver_port=st.ports["apiserver"], log=log)
            return ClusterInfo(self.kubeconfig, server, self.dir, reused=True)

        old = State.load(self.state_file)
        if old.pids:
            say("[cluster] stopping a half-running cluster first")
        self.real_node.down(log=log)
        stop(old.pids, self.dir)
        # Keep the last ports when they are still free, so kubeconfigs stay valid.
        ports = {
            n: old.ports[n] if n in old.ports and port_is_free(old.ports[n]) else free_port()
            for n in PORT_NAMES
        }
        # etcd data from a previous run is stale once its processes are gone.
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        ensure_pki(self.pki, SERVICE_IP)
        server = f"https://127.0.0.1:{ports['apiserver']}"
        kube.write_kubeconfig(self.kubeconfig, server=server, pki=self.pki)
        self._write_kwok_config()

        st = State(ports=ports, versions=asdict(self.versions), revision=REVISION)
        started = time.monotonic()
        try:
            for comp in self._components(binaries, ports):
                if comp.name == "kwok":
                    # Its CRDs first, or its Exec watch starts on a resource the server lacks.
                    kube.apply_kwok_crds(self.kubeconfig, kwok_crd_dir(self.versions), KWOK_CRDS)
                say(f"[cluster] starting {comp.name}" + (f" on port {comp.port}" if comp.port else ""))
                st.pids[comp.name] = start(comp, self.logs)
                st.save(self.state_file)
            kube.ensure_cluster_objects(self.kubeconfig, nodes=nodes)
            kube.wait_nodes_ready(self.kubeconfig, nodes=nodes, timeout=90)
        except ClusterError:
            stop(st.pids, self.dir)
            st.pids = {}
            st.save(self.state_file)
            raise
        except Exception as exc:
            dead = [n for n, pid in st.pids.items() if not pid_alive(pid)]
            stop(st.pids, self.dir)
            st.pids = {}
            st.save(self.state_file)
            culprit = (
                "; ".join(f"{n} exited, log: {self.logs / (n + '.log')}" for n in dead)
                or f"logs: {self.logs}"
            )
            raise ClusterError(f"cluster setup failed: {exc}; {culprit}") from exc
        say(f"[cluster] ready in {time.monotonic() - started:.1f}s at {server}")
        if with_real_node:
            self.real_node.up(apiserver_port=ports["apiserver"], log=log)
        return ClusterInfo(self.kubeconfig, server, self.dir, reused=False)

    def down(self) -> list[str]:
        stopped = self.real_node.down()
        st = State.load(self.state_file)
        stopped += stop(st.pids, self.dir)
        st.pids = {}
        if self.dir.exists():
            st.save(self.state_file)
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)
        return stopped

    # -- component definitions ----------------------------------------------------
    def _write_kwok_config(self) -> None:
        stage_root = kwok_stage_dir(self.versions)
        # The standalone controller does not default these (kwokctl writes them itself).
        options = {
            "nodeLeaseParallelism": 4,
            "podPlayStageParallelism": 4,
            "nodePlayStageParallelism": 4,
            "podsOnNodeSyncParallelism": 1,
            "enablePodsOnNodeSyncListPager": True,
            "enablePodsOnNodeSyncStreamWatch": False,
            # exec/attach/logs/port-forward on the fake kubelet (only pods with an Exec object exec).
            "enableDebuggingHandlers": True,
        }
        config = {
            "kind": "KwokConfiguration",
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "options": options,
        }
        docs = [yaml.safe_dump(config)]
        for stage in KWOK_STAGES:
            docs.append((stage_root / f"{stage}.yaml").read_text())
        (self.dir / "kwok.yaml").write_text("---\n".join(docs))

    def _apiserver_argv(self, binary: Path, etcd_url: str, port: int) -> list[str]:
        pki = self.pki
        return [
            str(binary),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            # What kube-apiserver shows kubelets (the real node's logs, exec, port-forward).
            f"--kubelet-client-certificate={pki / 'admin.crt'}",
            f"--kubelet-client-key={pki / 'admin.key'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
        ]

    def extra_apiserver(self, name: str, *, args: list[str], timeout: float = 120) -> tuple[int, str]:
        """Another kube-apiserver beside the running cluster: pid and URL (stop it with ``terminate``).

        It shares the cluster's etcd under a prefix of its own (``/<name>``, so it starts empty
        but for what it bootstraps) and its certificates; ``args`` are added (a webhook, say).
        The caller stops it; ``down()`` stops it too (it runs from this state dir).
        """
        st = self.running()
        if st is None:
            raise ClusterError("the cluster is not running")
        port = free_port()
        argv = self._apiserver_argv(
            ensure_binaries(self.versions)["kube-apiserver"], f"http://127.0.0.1:{st.ports['etcd']}", port
        )
        argv += [f"--etcd-prefix=/{name}", *args]
        pid = start(
            Component(name, argv, port, lambda: self._apiserver_ready(port), timeout=timeout), self.logs
        )
        return pid, f"https://127.0.0.1:{port}"

    def _components(self, b: dict[str, Path], p: dict[str, int]) -> list[Component]:
        d, pki = self.dir, self.pki
        etcd_url = f"http://127.0.0.1:{p['etcd']}"
        peer_url = f"http://127.0.0.1:{p['etcd_peer']}"
        always_allow = "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics"
        return [
            Component(
                "etcd",
                [
                    str(b["etcd"]),
                    "--name=local",
                    f"--data-dir={d / 'etcd'}",
                    f"--listen-client-urls={etcd_url}",
                    f"--advertise-client-urls={etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=local={peer_url}",
                    "--listen-metrics-urls=",
                    "--auto-compaction-retention=1",
                    "--quota-backend-bytes=8589934592",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
                p["etcd"],
                lambda: http_ok(f"{etcd_url}/health", expect='"health":"true"'),
            ),
            Component(
                "kube-apiserver",
                self._apiserver_argv(b["kube-apiserver"], etcd_url, p["apiserver"]),
                p["apiserver"],
                lambda: self._apiserver_ready(p["apiserver"]),
                timeout=120,
            ),
            Component(
                "kube-controller-manager",
                [
                    str(b["kube-controller-manager"]),
                    f"--kubeconfig={self.kubeconfig}",
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={p['controller_manager']}",
                    always_allow,
                    f"--root-ca-file={pki / 'ca.crt'}",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                    f"--cluster-signing-key-file={pki / 'ca.key'}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--controllers=*",
                    "--leader-elect=false",
                ],
                p["controller_manager"],
                lambda: http_ok(f"https://127.0.0.1:{p['controller_manager']}/healthz", context=_insecure()),
            ),
            Component(
                "kube-scheduler",
                [
                    str(b["kube-scheduler"]),
                    f"--kubeconfig={self.kubeconfig}",
                    f"--authentication-kubeconfig={self.kubeconfig}",
                    f"--authorization-kubeconfig={self.kubeconfig}",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={p['scheduler']}",
                    always_allow,
                    "--leader-elect=false",
                ],
                p["scheduler"],
                lambda: http_ok(f"https://127.0.0.1:{p['scheduler']}/healthz", context=_insecure()),
            ),
            Component(
                "kwok",
                [
                    str(b["kwok"]),
                    f"--kubeconfig={self.kubeconfig}",
                    f"--config={d / 'kwok.yaml'}",
                    "--manage-all-nodes=false",
                    f"--manage-nodes-with-annotation-selector={kube.KWOK_ANNOTATION}=fake",
                    f"--cidr={POD_CIDR}",
                    # The fake nodes' kubelet is KWOK's own server: kube-apiserver reaches it there
                    # for exec (and logs), so the nodes' address is the loopback one.
                    "--node-ip=127.0.0.1",
                    f"--node-port={p['kwok']}",
                    f"--server-address=127.0.0.1:{p['kwok']}",
                    f"--enable-crds={','.join(KWOK_CRDS)}",
                    "--node-lease-duration-seconds=40",
                ],
                p["kwok"],
                lambda: http_ok(f"http://127.0.0.1:{p['kwok']}/healthz"),
            ),
        ]


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
