"""The dev cluster's only contact with the Kubernetes API: kubeconfig, fake
nodes, the default StorageClass, and waits on them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client import ApiException

from kubesphere import kubeconfig

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
STORAGE_CLASS = "kwok-volume"
STORAGE_PROVISIONER = "kwok.x-k8s.io/volume"


def write_kubeconfig(
    path: Path, *, server: str, pki: Path, cert: Path | None = None, key: Path | None = None
) -> None:
    """A kubeconfig for ``server`` with a client certificate (the admin's unless given)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "ks-local",
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": "ks-local-admin",
                "user": {
                    "client-certificate": str(cert or pki / "admin.crt"),
                    "client-key": str(key or pki / "admin.key"),
                },
            }
        ],
        "contexts": [{"name": "ks-local", "context": {"cluster": "ks-local", "user": "ks-local-admin"}}],
        "current-context": "ks-local",
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)


def api_client(path: Path) -> client.ApiClient:
    return kubeconfig.api_client(path)


def node_manifest(index: int) -> dict[str, Any]:
    name = f"kwok-node-{index}"
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    if index == 0:
        labels["node-role.kubernetes.io/control-plane"] = ""
    else:
        labels["node-role.kubernetes.io/worker"] = ""
    resources = {"cpu": "32", "memory": "256Gi", "pods": "250"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "status": {"allocatable": resources, "capacity": resources},
    }


def storage_class_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": STORAGE_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def _create_if_missing(create: Any, body: dict[str, Any]) -> bool:
    try:
        create(body=body)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


def ensure_cluster_objects(kubeconfig: Path, *, nodes: int) -> None:
    """Create the fake nodes and the default StorageClass if they do not exist."""
    with api_client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        for i in range(nodes):
            _create_if_missing(core.create_node, node_manifest(i))
        _create_if_missing(client.StorageV1Api(api).create_storage_class, storage_class_manifest())


def wait_nodes_ready(kubeconfig: Path, *, nodes: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with api_client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        while True:
            items = core.list_node().items
            ready = [
                n
                for n in items
                if n.status
                and any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
            ]
            if len(ready) >= nodes:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {len(ready)} of {nodes} KWOK nodes became Ready within {timeout:.0f}s "
                    "(is the kwok controller running? see its log)"
                )
            time.sleep(0.5)


def apply_kwok_crds(kubeconfig: Path, folder: Path, kinds: tuple[str, ...]) -> None:
    """KWOK's CRDs for ``kinds`` (``Exec`` -> ``kwok.x-k8s.io_execs.yaml``), established."""
    with api_client(kubeconfig) as api:
        for kind in kinds:
            apply_crd(api, folder / f"kwok.x-k8s.io_{kind.lower()}s.yaml")


def apply_crd(api: client.ApiClient, path: Path, *, timeout: float = 60) -> str:
    """Create or replace the CRD in ``path`` and wait until it is Established; return its name."""
    ext = client.ApiextensionsV1Api(api)
    body = yaml.safe_load(path.read_text())
    name: str = body["metadata"]["name"]
    try:
        current = ext.read_custom_resource_definition(name)
        assert current.metadata is not None
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(name, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        ext.create_custom_resource_definition(body)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = ext.read_custom_resource_definition(name)
        conditions = crd.status.conditions if crd.status else None
        if any(c.type == "Established" and c.status == "True" for c in conditions or []):
            return name
        time.sleep(0.25)
    raise TimeoutError(f"CRD {name} was not established within {timeout:.0f}s")
