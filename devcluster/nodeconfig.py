"""Configuration files of the real node: containerd, CNI, kubelet and kube-proxy.

Pure functions of the node's layout (``NodeLayout``), so the choices are in one
place and can be tested without starting anything.  Each setting that departs
from the upstream default says why; most are about this kind of machine: a VM
with hybrid cgroups (v1 controllers plus the unified hierarchy), no systemd, no
swap accounting, and root without ``CAP_SYS_RESOURCE``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

NODE_NAME = "real-node-0"
#: Label and taint of the real node: only pods that tolerate it and select it land there.
NODE_KEY = "ks-devcluster/real-node"
POD_CIDR = "10.123.0.0/24"
BRIDGE = "ksrn0"
CNI_BIN_DIR = "/usr/lib/cni"
#: The cgroup parent of every pod (created in every hierarchy before kubelet starts).
CGROUP_ROOT = "/ks-real-node"
PAUSE_IMAGE = "localhost/ks-devcluster/pause:1"


@dataclass(frozen=True)
class NodeLayout:
    dir: Path
    node_ip: str
    ports: dict[str, int]

    @property
    def containerd_root(self) -> Path:
        return self.dir / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.dir / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        return self.dir / "containerd" / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.dir / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.dir / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.dir / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.dir / "pod-logs"

    def kubeconfig(self, name: str) -> Path:
        return self.dir / f"{name}.kubeconfig"

    def config(self, name: str) -> Path:
        return self.dir / name


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _toml(tables: dict[str, dict[str, Any]], top: dict[str, Any]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for name, values in tables.items():
        lines += ["", f"[{name}]"]
        lines += [f"  {k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def containerd_config(layout: NodeLayout) -> str:
    cri = '"io.containerd.grpc.v1.cri"'
    runc = f"plugins.{cri}.containerd.runtimes.runc"
    return _toml(
        {
            "grpc": {"address": str(layout.containerd_socket)},
            "ttrpc": {"address": str(layout.containerd_socket) + ".ttrpc"},
            "debug": {"address": ""},
            "metrics": {"address": ""},
            f"plugins.{cri}": {
                "sandbox_image": PAUSE_IMAGE,
                # root lacks CAP_SYS_RESOURCE here: without this every sandbox fails with
                # "can't get final child's PID from pipe" (runc may not lower oom_score_adj).
                "restrict_oom_score_adj": True,
                # Network namespaces live under the state dir, so teardown finds them all.
                "netns_mounts_under_state_dir": True,
                "enable_selinux": False,
            },
            f"plugins.{cri}.containerd": {"snapshotter": "overlayfs", "default_runtime_name": "runc"},
            runc: {"runtime_type": "io.containerd.runc.v2"},
            # cgroupfs, as kubelet's cgroupDriver: there is no systemd to delegate to.
            f"{runc}.options": {"SystemdCgroup": False, "Root": str(layout.runc_root)},
            f"plugins.{cri}.cni": {"bin_dir": CNI_BIN_DIR, "conf_dir": str(layout.cni_conf_dir)},
            'plugins."io.containerd.internal.v1.opt"': {"path": str(layout.dir / "containerd" / "opt")},
        },
        {
            "version": 2,
            "root": str(layout.containerd_root),
            "state": str(layout.containerd_state),
            "disabled_plugins": [
                "io.containerd.snapshotter.v1.aufs",
                "io.containerd.snapshotter.v1.btrfs",
                "io.containerd.snapshotter.v1.devmapper",
                "io.containerd.snapshotter.v1.zfs",
                "io.containerd.tracing.processor.v1.otlp",
            ],
        },
    )


def cni_config(layout: NodeLayout) -> str:
    """One bridge with host-local addresses; no masquerading or port maps (nothing to undo in iptables)."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "ks-real-node",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(layout.cni_ipam_dir),
                    },
                },
                {"type": "loopback"},
            ],
        },
        indent=2,
    )


def kubelet_config(layout: NodeLayout, *, ca: Path) -> str:
    doc = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.node_ip,
        "port": layout.ports["kubelet"],
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": layout.ports["kubelet_healthz"],
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        # Hybrid cgroups (v1 controllers): kubelet refuses them unless told otherwise.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": CGROUP_ROOT,
        "failSwapOn": False,
        "podLogsDir": str(layout.pod_logs),
        "registerWithTaints": [{"key": NODE_KEY, "value": "true", "effect": "NoSchedule"}],
        "maxPods": 30,
        # The node's images come from podman, not a registry: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A shared build machine's disk is often fuller than the defaults allow.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
        "serializeImagePulls": False,
        "resolvConf": "/etc/resolv.conf",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def kube_proxy_config(layout: NodeLayout) -> str:
    doc = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(layout.kubeconfig("kube-proxy"))},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "bindAddress": layout.node_ip,
        "healthzBindAddress": f"127.0.0.1:{layout.ports['proxy_healthz']}",
        "metricsBindAddress": f"127.0.0.1:{layout.ports['proxy_metrics']}",
        # Node ports on the node's address only (loopback ones need route_localnet).
        "nodePortAddresses": [f"{layout.node_ip}/32"],
        # Leave the host's conntrack sysctls alone.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def kubernetes_endpoint_slice(layout: NodeLayout) -> dict[str, Any]:
    """The ``kubernetes`` Service's endpoint: the forwarder on the node's address."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "kubernetes-real-node",  # realnode.SLICE
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": "kubernetes",
                "endpointslice.kubernetes.io/managed-by": "ks-devcluster",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [layout.node_ip], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": layout.ports["forwarder"], "protocol": "TCP"}],
    }
