"""/kapis/tenant.kubesphere.io/v1alpha2: which workspaces and namespaces each user sees, and the writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.apiserver.conftest import ApiServer, unique
from tests.apiserver.kapis_support import IAM, TENANT, TENANT_GV, World, call
from tests.conftest import Cluster
from tests.controllers.support import Manager, write_config
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster
#: Bound on waits for ks-controller-manager (it first works through every object in the cluster).
CONTROLLER_WAIT = 90


@pytest.fixture(scope="module")
def world(platform_crds: Cluster, apiserver: ApiServer) -> Iterator[World]:
    w = World(platform_crds, apiserver)
    n = w.names
    try:
        n["ws1"], n["ws2"] = w.workspace("tws1"), w.workspace("tws2")
        n["ns1a"], n["ns1b"] = w.namespace("tns1a", n["ws1"]), w.namespace("tns1b", n["ws1"])
        n["ns2"], n["nsx"] = w.namespace("tns2", n["ws2"]), w.namespace("tnsx", None)
        w.user("admin", globalrole="platform-admin")
        for key in ("wsadmin", "wsviewer", "wsregular", "projadmin", "outsider"):
            w.user(key)
        w.workspace_member(w.users["wsadmin"], n["ws1"], "admin")
        w.workspace_member(w.users["wsviewer"], n["ws1"], "viewer")
        w.workspace_member(w.users["wsregular"], n["ws1"], "regular")
        w.namespace_member(w.users["wsregular"], n["ns1a"], "viewer")
        w.namespace_member(w.users["projadmin"], n["ns1b"], "admin")
        w.until("wsregular", "GET", f"/api/v1/namespaces/{n['ns1a']}/pods", 200)
        w.until("projadmin", "GET", f"/api/v1/namespaces/{n['ns1b']}/pods", 200)
        w.until("wsviewer", "GET", f"{TENANT}/workspaces/{n['ws1']}", 200)
        yield w
    finally:
        w.close()


def names(resp: Any) -> set[str]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["totalItems"] == len(body["items"])
    return {o["metadata"]["name"] for o in body["items"]}


def get(world: World, who: str, path: str, **kw: Any) -> Any:
    return call(world.server, "GET", path, token=world.tokens.get(who), **kw)


def test_workspaces_each_user_sees(world: World) -> None:
    n = world.names
    ours = {n["ws1"], n["ws2"]}
    assert ours <= names(get(world, "admin", f"{TENANT}/workspaces"))
    for who in ("wsadmin", "wsviewer", "wsregular"):
        assert names(get(world, who, f"{TENANT}/workspaces")) == {n["ws1"]}, who
    assert get(world, "outsider", f"{TENANT}/workspaces").json() == {"items": [], "totalItems": 0}
    assert get(world, "projadmin", f"{TENANT}/workspaces").json() == {"items": [], "totalItems": 0}
    assert get(world, "wsadmin", f"{TENANT}/workspaces/{n['ws1']}").json()["metadata"]["name"] == n["ws1"]
    denied = get(world, "wsadmin", f"{TENANT}/workspaces/{n['ws2']}")
    assert denied.status_code == 403 and denied.json()["kind"] == "Status"
    assert get(world, "outsider", f"{TENANT}/workspaces/{n['ws1']}").status_code == 403
    assert get(world, "admin", f"{TENANT}/workspaces/nothing-{world.tag}").status_code == 404


def test_namespaces_each_user_sees(world: World) -> None:
    n = world.names
    in_ws1 = f"{TENANT}/workspaces/{n['ws1']}/namespaces"
    assert names(get(world, "admin", in_ws1)) == {n["ns1a"], n["ns1b"]}
    assert names(get(world, "wsadmin", in_ws1)) == {n["ns1a"], n["ns1b"]}
    assert names(get(world, "wsviewer", in_ws1)) == {n["ns1a"], n["ns1b"]}
    assert names(get(world, "wsregular", in_ws1)) == {n["ns1a"]}
    assert names(get(world, "projadmin", in_ws1)) == {n["ns1b"]}
    assert names(get(world, "outsider", in_ws1)) == set()
    everything = names(get(world, "admin", f"{TENANT}/namespaces"))
    assert {n["ns1a"], n["ns2"], n["nsx"], "kube-system"} <= everything
    assert names(get(world, "wsregular", f"{TENANT}/namespaces")) == {n["ns1a"]}
    assert names(get(world, "wsadmin", f"{TENANT}/namespaces")) == set()
    # One namespace: it must belong to the workspace in the URL, and be the caller's to see.
    assert get(world, "admin", f"{TENANT}/workspaces/{n['ws2']}/namespaces/{n['ns1a']}").status_code == 404
    assert get(world, "admin", f"{TENANT}/workspaces/{n['ws1']}/namespaces/{n['nsx']}").status_code == 404
    assert get(world, "wsregular", f"{in_ws1}/{n['ns1a']}").status_code == 200
    assert get(world, "wsregular", f"{in_ws1}/{n['ns1b']}").status_code == 403
    assert get(world, "outsider", f"{in_ws1}/{n['ns1a']}").status_code == 403


def test_list_paging_sorting_and_filters(world: World) -> None:
    n = world.names
    path = f"{TENANT}/workspaces"
    params = {"name": world.tag, "sortBy": "name", "ascending": "true"}
    assert [w["metadata"]["name"] for w in get(world, "admin", path, params=params).json()["items"]] == [
        n["ws1"],
        n["ws2"],
    ]
    page2 = get(world, "admin", path, params={**params, "limit": "1", "page": "2"}).json()
    assert (page2["totalItems"], [w["metadata"]["name"] for w in page2["items"]]) == (2, [n["ws2"]])
    newest_first = get(world, "admin", path, params={"names": f"{n['ws1']},{n['ws2']}"}).json()["items"]
    stamps = [w["metadata"]["creationTimestamp"] for w in newest_first]
    assert stamps == sorted(stamps, reverse=True)
    assert get(world, "admin", path, params={"nosuchfilter": "x"}).json() == {"items": [], "totalItems": 0}


def test_create_namespace_in_a_workspace(world: World) -> None:
    n = world.names
    ns = world.name("tcreated")
    path = f"{TENANT}/workspaces/{n['ws1']}/namespaces"

    def remove() -> None:
        try:
            world.core.delete_namespace(ns)
        except client.ApiException as exc:
            if exc.status != 404:
                raise

    world.cleanup.append(remove)
    body = {"metadata": {"name": ns, "labels": {"kubesphere.io/workspace": n["ws2"]}}}
    assert call(world.server, "POST", path, token=world.tokens["wsviewer"], json=body).status_code == 403
    # As in KubeSphere 3.4, a workspace's regular members do not create projects (self-provisioners do).
    assert call(world.server, "POST", path, token=world.tokens["wsregular"], json=body).status_code == 403
    resp = call(world.server, "POST", path, token=world.tokens["wsadmin"], json=body)
    assert resp.status_code == 200, resp.text
    made = world.core.read_namespace(ns)
    assert made.metadata.labels["kubesphere.io/workspace"] == n["ws1"]
    assert made.metadata.annotations["kubesphere.io/creator"] == world.users["wsadmin"]
    world.until("admin", "GET", f"{path}/{ns}", 200)
    # A patch cannot move it to another workspace.
    patch = {"metadata": {"labels": {"kubesphere.io/workspace": n["ws2"], "team": "a"}}}
    resp = call(world.server, "PATCH", f"{path}/{ns}", token=world.tokens["admin"], json=patch)
    assert resp.status_code == 200, resp.text
    assert world.core.read_namespace(ns).metadata.labels["kubesphere.io/workspace"] == n["ws1"]
    assert call(world.server, "DELETE", f"{path}/{ns}", token=world.tokens["admin"]).json() == {
        "message": "success"
    }
    # A creator named by the client is kept (the console names the user it acts for).
    named = world.name("tnamed")
    world.cleanup.append(lambda: world.core.delete_namespace(named))
    body = {"metadata": {"name": named, "annotations": {"kubesphere.io/creator": "bob"}}}
    assert call(world.server, "POST", path, token=world.tokens["admin"], json=body).status_code == 200
    made = world.core.read_namespace(named).metadata
    assert (made.annotations["kubesphere.io/creator"], made.labels["kubesphere.io/workspace"]) == (
        "bob",
        n["ws1"],
    )
    world.until("admin", "GET", f"{path}/{named}", 200)
    # Labels cannot be dropped wholesale either.
    resp = call(
        world.server,
        "PATCH",
        f"{path}/{named}",
        token=world.tokens["admin"],
        json={"metadata": {"labels": None}},
    )
    assert resp.status_code == 400


def test_workspace_lifecycle(world: World) -> None:
    """Reference case 1 (the apiserver side): create, read back, roles listed, delete."""
    ws = world.name("tlife")
    token = world.tokens["admin"]
    world.cleanup.append(lambda: _delete_template(world, ws))
    body = {
        "apiVersion": "tenant.kubesphere.io/v1alpha2",
        "kind": "WorkspaceTemplate",
        "metadata": {"name": ws},
        "spec": {"template": {"spec": {}}},
    }
    resp = call(world.server, "POST", f"{TENANT}/workspaces", token=token, json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["spec"]["template"]["spec"]["manager"] == world.users["admin"]
    world.until("admin", "GET", f"{TENANT}/workspaces/{ws}", 200, timeout=30)
    roles = call(world.server, "GET", f"{IAM}/workspaceroles", token=token).json()
    assert roles["totalItems"] > 0
    bad = call(
        world.server,
        "DELETE",
        f"{TENANT}/workspaces/{ws}",
        token=token,
        params={"propagationPolicy": "Sometimes"},
    )
    assert bad.status_code == 400
    resp = call(world.server, "DELETE", f"{TENANT}/workspaces/{ws}", token=token)
    assert resp.json() == {"message": "success"}
    wait_for(
        lambda: call(world.server, "GET", f"{TENANT}/workspaces/{ws}", token=token).status_code == 404,
        timeout=30,
        what="the workspace gone",
    )


def test_workspace_with_generate_name(world: World) -> None:
    """The console may send only ``generateName``; kube-apiserver completes the name."""
    token = world.tokens["admin"]
    body = {"metadata": {"generateName": world.name("tgen") + "-"}, "spec": {"template": {"spec": {}}}}
    resp = call(world.server, "POST", f"{TENANT}/workspaces", token=token, json=body)
    assert resp.status_code == 200, resp.text
    made = resp.json()["metadata"]["name"]
    world.cleanup.append(lambda: _delete_template(world, made))
    assert made.startswith(world.name("tgen") + "-") and len(made) > len(world.name("tgen")) + 1
    bad = {"metadata": {"generateName": "no/slashes-"}, "spec": {}}
    assert call(world.server, "POST", f"{TENANT}/workspaces", token=token, json=bad).status_code == 422
    nothing: dict[str, Any] = {"metadata": {}, "spec": {}}
    assert call(world.server, "POST", f"{TENANT}/workspaces", token=token, json=nothing).status_code == 422


def _delete_template(world: World, name: str) -> None:
    try:
        world.custom.delete_cluster_custom_object(*TENANT_GV, "workspacetemplates", name)
        world.custom.patch_cluster_custom_object(
            *TENANT_GV, "workspacetemplates", name, {"metadata": {"finalizers": None}}
        )
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def test_with_the_controllers_workspace_roles_and_namespace_admin_appear(
    world: World, tmp_path: Path
) -> None:
    """Reference cases 1 and 10 through the API, with a real ks-controller-manager (on its own Lease)."""
    manager = Manager(
        kubeconfig=world.cluster.kubeconfig,
        log=tmp_path / "manager.log",
        config=write_config(tmp_path / "kubesphere.yaml"),
        lease=unique("ks-cm-apis"),
    )
    token = world.tokens["admin"]
    ws, ns = world.name("tctl"), world.name("tctlns")
    world.cleanup.append(lambda: _delete_template(world, ws))
    world.cleanup.append(lambda: _delete_namespace(world, ns))
    manager.start()
    try:
        body = {"metadata": {"name": ws}, "spec": {"template": {"spec": {"manager": world.users["wsadmin"]}}}}
        assert call(world.server, "POST", f"{TENANT}/workspaces", token=token, json=body).status_code == 200

        def roles() -> set[str]:
            resp = call(world.server, "GET", f"{IAM}/workspaces/{ws}/workspaceroles", token=token)
            return {r["metadata"]["name"] for r in resp.json()["items"]} if resp.status_code == 200 else set()

        expected = {f"{ws}-{r}" for r in ("admin", "regular", "viewer", "self-provisioner")}
        wait_for(lambda: roles() >= expected, timeout=CONTROLLER_WAIT, what="the workspace's roles")
        # The manager named in the template is the workspace's admin, and sees it.
        world.until("wsadmin", "GET", f"{TENANT}/workspaces/{ws}", 200, timeout=CONTROLLER_WAIT)
        creator = world.users["wsregular"]
        body = {"metadata": {"name": ns, "annotations": {"kubesphere.io/creator": creator}}}
        resp = call(world.server, "POST", f"{TENANT}/workspaces/{ws}/namespaces", token=token, json=body)
        assert resp.status_code == 200, resp.text

        def members() -> dict[str, str]:
            resp = call(world.server, "GET", f"{IAM}/namespaces/{ns}/members", token=token)
            items = resp.json()["items"] if resp.status_code == 200 else []
            return {
                u["metadata"]["name"]: u["metadata"]["annotations"]["iam.kubesphere.io/role"] for u in items
            }

        wait_for(
            lambda: members().get(creator) == "admin",
            timeout=CONTROLLER_WAIT,
            what="the creator as the namespace admin",
        )

        def roles_in_namespace() -> set[str]:
            resp = call(world.server, "GET", f"{IAM}/namespaces/{ns}/roles", token=token)
            return {r["metadata"]["name"] for r in resp.json()["items"]} if resp.status_code == 200 else set()

        # The controller binds the creator first and copies the roles after.
        wait_for(
            lambda: {"admin", "operator", "viewer"} <= roles_in_namespace(),
            timeout=CONTROLLER_WAIT,
            what="the namespace's roles",
        )
        # The creator now sees the namespace through the tenant API.
        world.until(
            "wsregular", "GET", f"{TENANT}/workspaces/{ws}/namespaces/{ns}", 200, timeout=CONTROLLER_WAIT
        )
        assert call(world.server, "DELETE", f"{TENANT}/workspaces/{ws}", token=token).json() == {
            "message": "success"
        }
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n---- ks-controller-manager log (tail) ----\n{manager.tail(60)}"
        ) from None
    finally:
        manager.stop()


def _delete_namespace(world: World, name: str) -> None:
    try:
        world.core.delete_namespace(name)
        world.core.patch_namespace(name, {"metadata": {"finalizers": None}})
    except client.ApiException as exc:
        if exc.status != 404:
            raise
