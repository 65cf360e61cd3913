"""Fixtures of the console-compatibility suite: the apiserver suite's ks-apiserver (and Redis) and
the controller suite's ks-controller-manager, reused as they are, on the local cluster, and ``site``:
per test module, a workspace and a project made as the console makes them, with a platform admin,
the workspace's manager, a project viewer and a regular user."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from devcluster.pki import ensure_serving_cert
from tests.apiserver.conftest import (  # noqa: F401 (fixtures)
    _SERVERS,
    ApiServer,
    UserFactory,
    _apiserver_logs_on_failure,
    apiserver,
    apiserver_env,
    config_doc,
    jwt_secret,
    monitoring,
    prometheus,
    start_apiserver,
    start_server,
    user_factory,
)
from tests.conftest import Cluster
from tests.console.support import IAM, TENANT, WAIT, Site, add_user, exec_pod
from tests.controllers.conftest import manager, managers_seen, objects  # noqa: F401 (fixtures)
from tests.controllers.support import Manager
from tests.helpers import wait_for
from tests.services import RedisServer


@pytest.fixture(scope="module")
def site(platform_crds: Cluster, apiserver: ApiServer, manager: Manager) -> Iterator[Site]:  # noqa: F811
    s = Site(apiserver, platform_crds)
    add_user(s, "admin", "platform-admin")
    for key in ("wsadmin", "viewer", "regular"):
        add_user(s, key, "platform-regular")
    s.ws = f"cws-{s.tag}"
    body = {
        "apiVersion": "tenant.kubesphere.io/v1alpha2",
        "kind": "WorkspaceTemplate",
        "metadata": {"name": s.ws, "annotations": {"kubesphere.io/creator": s.users["admin"]}},
        "spec": {"template": {"spec": {"manager": s.users["wsadmin"]}}},
    }
    assert s.send("admin", "POST", f"{TENANT}/workspaces", json=body).status_code == 200
    try:
        # The controller makes the workspace roles from the RoleBases and binds the manager.
        wait_for(
            lambda: s.send("wsadmin", "GET", f"{TENANT}/workspaces/{s.ws}").status_code == 200,
            timeout=WAIT,
            what="the manager is the workspace's admin",
        )
        s.ns = f"cns-{s.tag}"
        made = s.send(
            "wsadmin", "POST", f"{TENANT}/workspaces/{s.ws}/namespaces", json={"metadata": {"name": s.ns}}
        )
        assert made.status_code == 200, made.text
        wait_for(
            lambda: s.send("wsadmin", "GET", f"{IAM}/namespaces/{s.ns}/roles/viewer").status_code == 200,
            timeout=WAIT,
            what="the project's roles",
        )
        member = [{"username": s.users["viewer"], "roleRef": "viewer"}]
        added = s.send("wsadmin", "POST", f"{IAM}/namespaces/{s.ns}/members", json=member)
        assert added.status_code == 200, added.text
        wait_for(
            lambda: s.send("viewer", "GET", f"/api/v1/namespaces/{s.ns}/pods").status_code == 200,
            timeout=30,
            what="the viewer reads the project",
        )
        yield s
    finally:
        for plural, name in (("workspacetemplates", s.ws),):
            try:
                s.custom.delete_cluster_custom_object("tenant.kubesphere.io", "v1alpha2", plural, name)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
        if s.ns:
            try:
                client.CoreV1Api(s.cluster.api).delete_namespace(s.ns)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture(scope="module")
def live(site: Site) -> Iterator[Site]:
    """The site, with an operator in its project and a pod there that can be exec'd into."""
    member = [{"username": site.users["regular"], "roleRef": "operator"}]
    added = site.send("wsadmin", "POST", f"{IAM}/namespaces/{site.ns}/members", json=member)
    assert added.status_code == 200, added.text
    exec_pod(site.cluster.api, site.ns, "term")
    yield site


@pytest.fixture(scope="session")
def second_server(
    platform_crds: Cluster,
    redis_server: RedisServer,
    apiserver_env: dict[str, str],  # noqa: F811 (the fixture imported above)
    user_factory: UserFactory,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiServer]:
    """One more ks-apiserver for what the suite's server does not serve: HTTPS (kubectl sends tokens
    only over TLS) and ``kubernetes.master`` (the address put in downloaded kubeconfigs). It shares
    the suite's Redis, so tokens work on both."""
    pki = platform_crds.kubeconfig.parent / "pki"
    cert, key = ensure_serving_cert(pki, "ks-apiserver-test", cn="ks-apiserver")
    doc = config_doc(redis_server, extra={"kubernetes": {"master": platform_crds.server}})
    server = start_server(
        platform_crds, tmp_path_factory.mktemp("second"), doc,
        users=user_factory, env=apiserver_env, tls=(cert, key, pki / "ca.crt"),
    )  # fmt: skip
    _SERVERS.append(server)
    try:
        yield server
    finally:
        server.stop()
