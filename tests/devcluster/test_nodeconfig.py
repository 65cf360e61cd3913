"""The real node's configuration files: what each component is told, checked without starting it."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from devcluster import nodeconfig, realnode, realpods
from devcluster.nodeconfig import NodeLayout

PORTS = {
    "forwarder": 40001,
    "kubelet": 40002,
    "kubelet_healthz": 40003,
    "proxy_healthz": 40004,
    "proxy_metrics": 40005,
}


def layout(tmp_path: Path) -> NodeLayout:
    return NodeLayout(dir=tmp_path / "real-node", node_ip="192.0.2.7", ports=PORTS)


def test_containerd_keeps_everything_under_the_state_dir(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    doc = tomllib.loads(nodeconfig.containerd_config(lay))
    assert doc["version"] == 2
    for key in ("root", "state"):
        assert Path(doc[key]).is_relative_to(lay.dir)
    assert doc["grpc"]["address"] == str(lay.containerd_socket)
    cri = doc["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True and cri["netns_mounts_under_state_dir"] is True
    assert cri["sandbox_image"] == nodeconfig.PAUSE_IMAGE
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is False
    assert Path(runc["options"]["Root"]).is_relative_to(lay.dir)
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": str(lay.cni_conf_dir)}


def test_cni_bridge_allocates_from_the_node_cidr_into_the_state_dir(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    bridge = json.loads(nodeconfig.cni_config(lay))["plugins"][0]
    assert bridge["bridge"] == nodeconfig.BRIDGE and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": nodeconfig.POD_CIDR}]]
    assert Path(bridge["ipam"]["dataDir"]).is_relative_to(lay.dir)


def test_kubelet_registers_tainted_and_serves_on_the_node_address(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    cfg = yaml.safe_load(nodeconfig.kubelet_config(lay, ca=tmp_path / "ca.crt"))
    assert cfg["address"] == "192.0.2.7" and cfg["port"] == 40002
    taint = {"key": nodeconfig.NODE_KEY, "value": "true", "effect": "NoSchedule"}
    assert cfg["registerWithTaints"] == [taint]
    assert cfg["authentication"]["anonymous"] == {"enabled": False}
    assert cfg["authorization"] == {"mode": "Webhook"}
    assert cfg["cgroupDriver"] == "cgroupfs" and cfg["failCgroupV1"] is False
    assert cfg["containerRuntimeEndpoint"] == f"unix://{lay.containerd_socket}"
    assert Path(cfg["podLogsDir"]).is_relative_to(lay.dir)


def test_a_pod_with_the_placement_tolerates_the_taint_and_selects_the_node(tmp_path: Path) -> None:
    cfg = yaml.safe_load(nodeconfig.kubelet_config(layout(tmp_path), ca=tmp_path / "ca.crt"))
    taint = cfg["registerWithTaints"][0]
    spec = realnode.placement()
    assert any(
        t["key"] == taint["key"] and t["value"] == taint["value"] and t["effect"] == taint["effect"]
        for t in spec["tolerations"]
    )
    assert spec["nodeSelector"] == {nodeconfig.NODE_KEY: "true"}


def test_kube_proxy_and_the_kubernetes_endpoint_meet_at_the_forwarder(tmp_path: Path) -> None:
    lay = layout(tmp_path)
    proxy = yaml.safe_load(nodeconfig.kube_proxy_config(lay))
    assert proxy["mode"] == "iptables" and proxy["hostnameOverride"] == nodeconfig.NODE_NAME
    assert proxy["conntrack"]["maxPerCore"] == 0
    eps = nodeconfig.kubernetes_endpoint_slice(lay)
    assert eps["metadata"]["name"] == realnode.SLICE
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert eps["endpoints"][0]["addresses"] == ["192.0.2.7"]
    assert eps["ports"] == [{"name": "https", "port": 40001, "protocol": "TCP"}]


def test_the_switch_is_off_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KS_REAL_NODE", raising=False)
    assert not realnode.enabled()
    for on in ("1", "true", "yes"):
        monkeypatch.setenv("KS_REAL_NODE", on)
        assert realnode.enabled()
    monkeypatch.setenv("KS_REAL_NODE", "0")
    assert not realnode.enabled()


def test_the_operator_overlay_adds_only_the_real_node_placement() -> None:
    overlay = yaml.safe_load((realpods.OVERLAY / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../../deploy"]
    (patch,) = overlay["patches"]
    assert patch["target"]["kind"] == "Deployment" and patch["target"]["name"] == "ks-installer"
    ops = yaml.safe_load(patch["patch"])
    assert {op["path"].rsplit("/", 1)[-1]: op["value"] for op in ops} == realnode.placement()
    assert all(op["op"] == "add" and op["path"].startswith("/spec/template/spec/") for op in ops)


def test_a_backend_copy_differs_from_the_rendered_deployment_only_in_name_and_placement() -> None:
    labels = {"app": "ks-apiserver"}
    pod_spec = {"containers": [{"name": "ks-apiserver"}], "tolerations": [{"key": "a"}]}
    rendered = {
        "metadata": {"name": "ks-apiserver", "namespace": "kubesphere-system", "labels": labels, "uid": "x"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
        "status": {"replicas": 1},
    }
    placed = realpods.placed_copy(rendered)
    assert placed["metadata"] == {
        "name": "ks-apiserver-real-node", "namespace": "kubesphere-system", "labels": {"app": "ks-apiserver"},
    }  # fmt: skip
    pod = placed["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"key": "a"}, *realnode.placement()["tolerations"]]
    assert pod["nodeSelector"] == realnode.placement()["nodeSelector"]
    assert pod["containers"] == rendered["spec"]["template"]["spec"]["containers"]
    assert pod_spec == {"containers": [{"name": "ks-apiserver"}], "tolerations": [{"key": "a"}]}  # untouched
    assert "status" not in placed
