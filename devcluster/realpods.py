"""The operator and the platform's backend as real pods on the real node (``make up-real``).

The operator is ``deploy/`` exactly as users apply it, plus a node selector and
a toleration (the overlay ``devcluster/real-node/``).  The backend is the
ks-apiserver and ks-controller-manager Deployments the core role rendered,
copied with only their placement changed: ``common.core.nodeSelector`` would
steer them, but it steers ks-console too, whose image cannot be pulled here.
The copies (``<name>-real-node``) keep the rendered pod template, labels,
ServiceAccount, ConfigMap mount and Secret environment; the KWOK pods of the
originals run nothing, so the copies are the only backend that runs.
"""

from __future__ import annotations

import copy
import subprocess
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from devcluster import realnode
from devcluster.nodeconfig import NODE_NAME
from devcluster.settings import REPO_ROOT

OVERLAY = REPO_ROOT / "devcluster" / "real-node"
SYSTEM_NS = "kubesphere-system"
BACKENDS = ("ks-apiserver", "ks-controller-manager")
SUFFIX = "-real-node"
APISERVER_PORT = 9090


def apply_operator(kubectl: Path, kubeconfig: Path) -> None:
    """``kubectl apply -k devcluster/real-node``: CRD, namespace, RBAC and the operator Deployment."""
    out = subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", "apply", "-k", str(OVERLAY)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"kubectl apply -k {OVERLAY} failed: {out.stderr.strip()}")


def wait_available(api: client.ApiClient, name: str, *, timeout: float, namespace: str = SYSTEM_NS) -> None:
    apps = client.AppsV1Api(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = _as_dict(api, apps.read_namespaced_deployment(name, namespace))
        status, want = d.get("status") or {}, d["spec"]["replicas"]
        if (
            status.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == want
            and status.get("availableReplicas", 0) == want
        ):
            return
        time.sleep(1)
    raise RuntimeError(f"Deployment {namespace}/{name} was not available within {timeout:.0f}s")


def _as_dict(api: client.ApiClient, obj: object) -> dict[str, Any]:
    """A model as the API serves it (camelCase keys, no unset fields)."""
    out: dict[str, Any] = api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    return out


def placed_copy(rendered: dict[str, Any]) -> dict[str, Any]:
    """``rendered`` (a Deployment as read from the API), renamed, on the real node; nothing else changes."""
    meta = rendered["metadata"]
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": meta["name"] + SUFFIX,
            "namespace": meta["namespace"],
            "labels": dict(meta.get("labels") or {}),
        },
        "spec": copy.deepcopy(rendered["spec"]),
    }
    pod = body["spec"]["template"]["spec"]
    placement = realnode.placement()
    pod["nodeSelector"] = {**(pod.get("nodeSelector") or {}), **placement["nodeSelector"]}
    pod["tolerations"] = [*(pod.get("tolerations") or []), *placement["tolerations"]]
    return body


def apply_backends(api: client.ApiClient) -> list[str]:
    """Create (or replace) the placed copies of the rendered backend Deployments; return their names."""
    apps = client.AppsV1Api(api)
    names = []
    for name in BACKENDS:
        body = placed_copy(_as_dict(api, apps.read_namespaced_deployment(name, SYSTEM_NS)))
        copy_name = body["metadata"]["name"]
        try:
            current = _as_dict(api, apps.read_namespaced_deployment(copy_name, SYSTEM_NS))
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            apps.create_namespaced_deployment(SYSTEM_NS, body)  # type: ignore[arg-type]
        else:
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            apps.replace_namespaced_deployment(copy_name, SYSTEM_NS, body)  # type: ignore[arg-type]
        names.append(copy_name)
    return names


def delete_backends(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    for name in BACKENDS:
        try:
            apps.delete_namespaced_deployment(name + SUFFIX, SYSTEM_NS)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def pods_on_node(api: client.ApiClient, app: str, namespace: str = SYSTEM_NS) -> list[dict[str, Any]]:
    """The pods of ``app`` on the real node (the KWOK pods of the same labels run nothing)."""
    pods = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"app={app}", field_selector=f"spec.nodeName={NODE_NAME}"
    )
    return [_as_dict(api, p) for p in pods.items]


def ready_pods(api: client.ApiClient, app: str, namespace: str = SYSTEM_NS) -> list[dict[str, Any]]:
    """The Ready ones of ``pods_on_node``."""
    ready = []
    for pod in pods_on_node(api, app, namespace):
        conditions = (pod.get("status") or {}).get("conditions") or []
        if "deletionTimestamp" not in pod["metadata"] and any(
            c["type"] == "Ready" and c["status"] == "True" for c in conditions
        ):
            ready.append(pod)
    return ready


def apiserver_url(api: client.ApiClient) -> str:
    """ks-apiserver in its pod, by pod IP (there is no cluster DNS; the host routes to the pod network)."""
    pods = ready_pods(api, "ks-apiserver")
    if not pods:
        raise RuntimeError(f"no Ready ks-apiserver pod on {NODE_NAME}")
    return f"http://{pods[0]['status']['podIP']}:{APISERVER_PORT}"
