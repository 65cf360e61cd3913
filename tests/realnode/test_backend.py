"""ks-apiserver and ks-controller-manager as pods on the real node, as the core role deploys them.

The Deployments the core role rendered, copied with only their placement
changed (``devcluster/realpods.py`` says why: ``common.core.nodeSelector`` also
steers ks-console, whose image cannot be pulled here).  In the pod they read
``kubesphere.yaml`` from the mounted ConfigMap, their secrets from the
environment, and talk to kube-apiserver with the token kubelet projects.  The
configuration has Redis and OpenLDAP off (the sample's defaults): there is no
cluster DNS, so ``*.svc`` hosts would not resolve in the pods.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client

from devcluster import realpods
from devcluster.nodeconfig import NODE_NAME
from tests.helpers import wait_for
from tests.realnode.conftest import NS, Platform, pod_log

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]

IAM = "/kapis/iam.kubesphere.io/v1alpha2"


@pytest.fixture(scope="module")
def backend(platform: Platform) -> Iterator[str]:
    """The placed copies, Available; yields ks-apiserver's URL (pod IP: no cluster DNS)."""
    api = platform.cluster.api
    try:
        for name in realpods.apply_backends(api):
            realpods.wait_available(api, name, timeout=300)
        yield realpods.apiserver_url(api)
    finally:
        for app in realpods.BACKENDS:
            for pod in realpods.pods_on_node(api, app):
                try:
                    log = pod_log(platform.cluster, pod["metadata"]["name"], app)
                except client.ApiException:
                    continue
                print(f"\n---- {pod['metadata']['name']} log (tail) ----\n{log[-2500:]}")
        realpods.delete_backends(api)


def admin_token(platform: Platform, url: str) -> str:
    core = client.CoreV1Api(platform.cluster.api)
    secret = core.read_namespaced_secret("kubesphere-secret", NS).data
    password = base64.b64decode(secret["initAdminPassword"]).decode()
    form = {
        "grant_type": "password", "username": "admin", "password": password,
        "client_id": "kubesphere", "client_secret": "kubesphere",
    }  # fmt: skip

    def token() -> str | None:
        resp = requests.post(f"{url}/oauth/token", data=form, timeout=10)
        return resp.json().get("access_token") if resp.status_code == 200 else None

    # The controller hashes the admin's password first; the apiserver's informers then see it.
    return wait_for(token, timeout=120, what="admin to log in through the ks-apiserver pod", interval=1)


def test_copies_change_only_the_placement_of_the_rendered_deployments(platform: Platform) -> None:
    apps = client.AppsV1Api(platform.cluster.api)
    for name in realpods.BACKENDS:
        rendered = platform.cluster.api.sanitize_for_serialization(apps.read_namespaced_deployment(name, NS))
        placed = realpods.placed_copy(rendered)
        pod, original = placed["spec"]["template"]["spec"], rendered["spec"]["template"]["spec"]
        assert {k: v for k, v in pod.items() if k not in ("nodeSelector", "tolerations")} == {
            k: v for k, v in original.items() if k not in ("nodeSelector", "tolerations")
        }
        assert pod["nodeSelector"]["ks-devcluster/real-node"] == "true"
        assert placed["spec"]["selector"] == rendered["spec"]["selector"]
        assert placed["spec"]["template"]["metadata"] == rendered["spec"]["template"]["metadata"]


def test_backend_pods_run_on_the_real_node_with_the_mounted_config_and_env_secrets(
    platform: Platform, backend: str
) -> None:
    core = client.CoreV1Api(platform.cluster.api)
    config = yaml.safe_load(core.read_namespaced_config_map("kubesphere-config", NS).data["kubesphere.yaml"])
    # What this test relies on: nothing in the configuration needs cluster DNS.
    assert "ldap" not in config and (config.get("cache") or {}).get("type") != "redis"
    for app in realpods.BACKENDS:
        pods = realpods.ready_pods(platform.cluster.api, app)
        assert len(pods) == 1, f"{app}: {len(pods)} Ready pods on {NODE_NAME}"
        status = pods[0]["status"]["containerStatuses"][0]
        assert status["ready"] and status["restartCount"] == 0  # readiness passes, liveness never failed
        spec = pods[0]["spec"]
        assert spec["serviceAccountName"] == "kubesphere"
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes[mounts["/etc/kubesphere"]]["configMap"]["name"] == "kubesphere-config"
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert env["KUBESPHERE_JWT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "kubesphere-secret"
    leases = client.CoordinationV1Api(platform.cluster.api)
    holder = leases.read_namespaced_lease("ks-controller-manager-leader-election", NS).spec.holder_identity
    assert holder and holder.startswith("ks-controller-manager-real-node-"), holder


def test_admin_logs_in_and_a_user_made_through_the_pod_becomes_active(
    platform: Platform, backend: str
) -> None:
    token = admin_token(platform, backend)
    auth = {"Authorization": f"Bearer {token}"}
    # ks-apiserver reaches kube-apiserver as its service account (the projected token):
    # the proxied list is answered, not refused as system:anonymous.
    namespaces = requests.get(f"{backend}/api/v1/namespaces", headers=auth, timeout=30)
    assert namespaces.status_code == 200, namespaces.text
    assert NS in [n["metadata"]["name"] for n in namespaces.json()["items"]]

    name = f"rn-{uuid.uuid4().hex[:8]}"
    user: dict[str, Any] = {
        "apiVersion": "iam.kubesphere.io/v1alpha2",
        "kind": "User",
        "metadata": {"name": name, "annotations": {"iam.kubesphere.io/globalrole": "platform-regular"}},
        "spec": {"email": f"{name}@example.com", "password": "P@88w0rd-real"},
    }
    custom = client.CustomObjectsApi(platform.cluster.api)
    resp = requests.post(f"{backend}{IAM}/users", json=user, headers=auth, timeout=30)
    assert resp.status_code == 200, resp.text
    try:

        def active() -> dict[str, Any] | None:
            stored: dict[str, Any] = custom.get_cluster_custom_object(
                "iam.kubesphere.io", "v1alpha2", "users", name
            )
            ok = (stored.get("status") or {}).get("state") == "Active"
            return stored if ok and stored["spec"]["password"].startswith("$2") else None

        wait_for(active, timeout=120, what="the controller pod to hash the password and activate the user")
        basic = base64.b64encode(f"{name}:P@88w0rd-real".encode()).decode()

        def me() -> requests.Response | None:
            got = requests.get(f"{backend}{IAM}/users/{name}", headers={"Authorization": f"Basic {basic}"},
                               timeout=30)  # fmt: skip
            return got if got.status_code == 200 else None

        assert (
            wait_for(me, timeout=60, what="the new user to authenticate").json()["metadata"]["name"] == name
        )
    finally:
        requests.delete(f"{backend}{IAM}/users/{name}", headers=auth, timeout=30)
