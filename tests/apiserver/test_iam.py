"""/kapis/iam.kubesphere.io/v1alpha2 against a real ks-apiserver: users, passwords, roles, members."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from kubernetes import client

from tests.apiserver.conftest import ApiServer, delete_object, unique
from tests.apiserver.kapis_support import IAM, IAM_GV, PASSWORD, World, call
from tests.conftest import Cluster
from tests.controllers.support import Manager, write_config
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster
#: Bound on waits for ks-controller-manager (it first works through every object in the cluster).
CONTROLLER_WAIT = 90


@pytest.fixture(scope="module")
def world(platform_crds: Cluster, apiserver: ApiServer) -> Iterator[World]:
    w = World(platform_crds, apiserver)
    try:
        w.names["ws"] = w.workspace("iws")
        w.names["ns"] = w.namespace("ins", w.names["ws"])
        w.user("admin", globalrole="platform-admin")
        w.user("regular")
        w.user("other")
        yield w
    finally:
        w.close()


@pytest.fixture
def api_users(world: World) -> Iterator[list[str]]:
    """Users the test creates through the API; deleted (with their bindings) afterwards."""
    created: list[str] = []
    yield created
    for name in created:
        for item in world.custom.list_cluster_custom_object(
            *IAM_GV, "globalrolebindings", label_selector=f"iam.kubesphere.io/user-ref={name}"
        )["items"]:
            delete_object(world.custom, "globalrolebindings", item["metadata"]["name"])
        delete_object(world.custom, "users", name)


def admin(world: World, method: str, path: str, **kw: Any) -> Any:
    return call(world.server, method, path, token=world.tokens["admin"], **kw)


def stored_user(world: World, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = world.custom.get_cluster_custom_object(*IAM_GV, "users", name)
    return obj


def new_user(name: str, *, password: str = PASSWORD, role: str | None = "platform-regular") -> dict[str, Any]:
    annotations = {"iam.kubesphere.io/globalrole": role} if role else {}
    return {
        "apiVersion": "iam.kubesphere.io/v1alpha2",
        "kind": "User",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"email": f"{name}@example.com", "password": password},
    }


def test_create_user_binds_the_global_role_and_never_shows_the_password(
    world: World, api_users: list[str]
) -> None:
    name = unique("api-user")
    api_users.append(name)
    resp = admin(world, "POST", f"{IAM}/users", json=new_user(name))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert "password" not in body["spec"]
    assert body["metadata"]["annotations"]["iam.kubesphere.io/globalrole"] == "platform-regular"
    binding = world.custom.get_cluster_custom_object(
        *IAM_GV, "globalrolebindings", f"{name}-platform-regular"
    )
    assert binding["metadata"]["labels"]["iam.kubesphere.io/user-ref"] == name
    assert binding["roleRef"]["name"] == "platform-regular"
    stored = stored_user(world, name)
    assert "iam.kubesphere.io/globalrole" not in (stored["metadata"].get("annotations") or {})
    assert stored["spec"]["password"]  # kept for the user controller to hash
    world.until("admin", "GET", f"{IAM}/users/{name}", 200)
    got = admin(world, "GET", f"{IAM}/users/{name}").json()
    assert got["metadata"]["annotations"]["iam.kubesphere.io/globalrole"] == "platform-regular"
    assert "password" not in got["spec"]
    listed = admin(world, "GET", f"{IAM}/users", params={"email": f"{name}@example.com"}).json()
    assert [u["metadata"]["name"] for u in listed["items"]] == [name]
    assert all("password" not in u["spec"] for u in admin(world, "GET", f"{IAM}/users").json()["items"])
    role_filter = admin(world, "GET", f"{IAM}/users", params={"globalrole": "platform-admin"}).json()
    assert world.users["admin"] in [u["metadata"]["name"] for u in role_filter["items"]]
    assert name not in [u["metadata"]["name"] for u in role_filter["items"]]


@pytest.mark.parametrize("weak", ["short1A", "alllowercase1", "ALLUPPER123", "NoDigitsHere", "x" * 70 + "A1"])
def test_weak_password_is_422(world: World, weak: str) -> None:
    resp = admin(world, "POST", f"{IAM}/users", json=new_user(unique("weak"), password=weak))
    assert resp.status_code == 422, resp.text
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert weak not in resp.text and "spec.password" in resp.text


def test_unknown_global_role_is_404_and_creates_nothing(world: World) -> None:
    name = unique("norole")
    resp = admin(world, "POST", f"{IAM}/users", json=new_user(name, role="no-such-role"))
    assert resp.status_code == 404
    assert resp.text == 'globalrole.iam.kubesphere.io "no-such-role" not found\n'
    with pytest.raises(client.ApiException) as err:
        stored_user(world, name)
    assert err.value.status == 404


def test_duplicate_email_is_409(world: World) -> None:
    body = new_user(unique("dup"))
    body["spec"]["email"] = f"{world.users['regular']}@example.com"
    assert admin(world, "POST", f"{IAM}/users", json=body).status_code == 409


def test_unknown_user_is_404_text(world: World) -> None:
    resp = admin(world, "GET", f"{IAM}/users/nobody-{world.tag}")
    assert resp.status_code == 404
    assert resp.text == f'user.iam.kubesphere.io "nobody-{world.tag}" not found\n'


def test_update_keeps_the_password_and_sets_only_active_or_disabled(
    world: World, api_users: list[str]
) -> None:
    name = unique("upd")
    api_users.append(name)
    # Already a hash, so a running user controller leaves the password alone while we compare.
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    assert admin(world, "POST", f"{IAM}/users", json=new_user(name, password=hashed)).status_code == 200
    world.until("admin", "GET", f"{IAM}/users/{name}", 200)
    before = stored_user(world, name)["spec"]["password"]
    assert before == hashed
    body = admin(world, "GET", f"{IAM}/users/{name}").json()
    body["metadata"].pop("resourceVersion")  # a controller may write meanwhile; the server retries then
    body["spec"].update(description="changed", password="Other-Pass-123")
    body["status"] = {"state": "Disabled"}
    resp = admin(world, "PUT", f"{IAM}/users/{name}", json=body)
    assert resp.status_code == 200, resp.text
    stored = stored_user(world, name)
    assert stored["spec"]["password"] == before
    assert stored["spec"]["description"] == "changed"
    assert stored["status"]["state"] == "Disabled"
    body = admin(world, "GET", f"{IAM}/users/{name}").json()
    body["status"] = {"state": "AuthLimitExceeded"}
    body["metadata"].pop("resourceVersion", None)
    assert admin(world, "PUT", f"{IAM}/users/{name}", json=body).status_code == 200
    assert stored_user(world, name)["status"]["state"] == "Disabled"
    mismatch = {**body, "metadata": {**body["metadata"], "name": "someone-else"}}
    assert admin(world, "PUT", f"{IAM}/users/{name}", json=mismatch).status_code == 400
    assert admin(world, "DELETE", f"{IAM}/users/{name}").json() == {"message": "success"}


def test_regular_user_on_themselves_and_others(world: World) -> None:
    """Reference case 9, plus what a user may not change about themselves."""
    me, other = world.users["regular"], world.users["other"]
    token = world.tokens["regular"]
    assert call(world.server, "GET", f"{IAM}/users", token=token).status_code == 200
    assert call(world.server, "GET", f"{IAM}/users/{other}", token=token).status_code == 403
    assert call(world.server, "DELETE", f"{IAM}/users/{other}", token=token).status_code == 403
    mine = call(world.server, "GET", f"{IAM}/users/{me}", token=token)
    assert mine.status_code == 200
    body = mine.json()
    body["metadata"].pop("resourceVersion")  # no optimistic lock: a controller may write meanwhile
    body["spec"]["description"] = "about me"
    resp = call(world.server, "PUT", f"{IAM}/users/{me}", token=token, json=body)
    assert resp.status_code == 200, resp.text
    assert stored_user(world, me)["spec"]["description"] == "about me"
    promote = json.loads(json.dumps(body))
    promote["metadata"]["annotations"]["iam.kubesphere.io/globalrole"] = "platform-admin"
    assert call(world.server, "PUT", f"{IAM}/users/{me}", token=token, json=promote).status_code == 403
    disable = {**body, "status": {"state": "Disabled"}}
    assert call(world.server, "PUT", f"{IAM}/users/{me}", token=token, json=disable).status_code == 403
    regroup = json.loads(json.dumps(body))
    regroup["spec"]["groups"] = ["system:masters"]
    regroup["metadata"].setdefault("labels", {})["iam.kubesphere.io/identify-provider"] = "ldap"
    regroup["metadata"]["annotations"]["kubesphere.io/alias-name"] = "Me Myself"
    assert call(world.server, "PUT", f"{IAM}/users/{me}", token=token, json=regroup).status_code == 200
    stored = stored_user(world, me)
    assert not stored["spec"].get("groups")
    assert "iam.kubesphere.io/identify-provider" not in (stored["metadata"].get("labels") or {})
    assert stored["metadata"]["annotations"]["kubesphere.io/alias-name"] == "Me Myself"
    taken = json.loads(json.dumps(regroup))
    taken["spec"]["email"] = f"{other}@example.com"
    assert call(world.server, "PUT", f"{IAM}/users/{me}", token=token, json=taken).status_code == 409
    assert (
        world.custom.list_cluster_custom_object(
            *IAM_GV, "globalrolebindings", label_selector=f"iam.kubesphere.io/user-ref={me}"
        )["items"][0]["roleRef"]["name"]
        == "platform-regular"
    )


def test_password_change(world: World) -> None:
    me = world.server.make_user(world.name("pw"), PASSWORD, globalrole="platform-regular")
    token = world.server.login(me, PASSWORD)
    path = f"{IAM}/users/{me}/password"
    wrong = call(
        world.server, "PUT", path, token=token, json={"currentPassword": "nope", "password": "New-Pass-1"}
    )
    assert (wrong.status_code, wrong.text) == (400, "incorrect old password\n")
    weak = call(
        world.server, "PUT", path, token=token, json={"currentPassword": PASSWORD, "password": "weak"}
    )
    assert weak.status_code == 422
    ok = call(
        world.server, "PUT", path, token=token, json={"currentPassword": PASSWORD, "password": "New-Pass-12"}
    )
    assert ok.status_code == 200 and ok.json() == {"message": "success"}
    assert stored_user(world, me)["spec"]["password"] in ("New-Pass-12",) or stored_user(world, me)["spec"][
        "password"
    ].startswith("$2")
    other = world.server.make_user(world.name("pw2"), PASSWORD, globalrole="platform-regular")
    forbidden = call(
        world.server,
        "PUT",
        f"{IAM}/users/{other}/password",
        token=token,
        json={"currentPassword": "", "password": "New-Pass-12"},
    )
    assert forbidden.status_code == 403
    # A user manager resets a password without knowing the old one.
    reset = admin(world, "PUT", f"{IAM}/users/{other}/password", json={"password": "Reset-Pass-9"})
    assert reset.status_code == 200, reset.text


def test_login_records(world: World) -> None:
    me = world.users["other"]
    world.server.login(me, PASSWORD)
    path = f"{IAM}/users/{me}/loginrecords"

    def records() -> list[dict[str, Any]]:
        resp = call(world.server, "GET", path, token=world.tokens["other"])
        assert resp.status_code == 200, resp.text
        return list(resp.json()["items"])

    items = wait_for(records, timeout=20, what="a login record through the API")
    assert all(r["metadata"]["labels"]["iam.kubesphere.io/user-ref"] == me for r in items)
    assert any(r["spec"]["success"] for r in items)
    assert call(world.server, "GET", path, token=world.tokens["regular"]).status_code == 403


def rules_of(world: World, plural: str, name: str) -> list[dict[str, Any]]:
    return list(world.custom.get_cluster_custom_object(*IAM_GV, plural, name).get("rules") or [])


def test_global_role_aggregation(world: World) -> None:
    name = world.name("agg")
    templates = ["role-template-view-users", "role-template-view-workspaces"]
    body = {
        "metadata": {
            "name": name,
            "annotations": {"iam.kubesphere.io/aggregation-roles": json.dumps(templates)},
        },
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    }
    world.cleanup.append(lambda: delete_object(world.custom, "globalroles", name))
    resp = admin(world, "POST", f"{IAM}/globalroles", json=body)
    assert resp.status_code == 200, resp.text
    expected = rules_of(world, "globalroles", templates[0]) + rules_of(world, "globalroles", templates[1])
    assert rules_of(world, "globalroles", name) == expected
    world.until("admin", "GET", f"{IAM}/globalroles/{name}", 200)
    # A patch without the annotation keeps the rules; with it, they are recomputed.
    patch = {"metadata": {"annotations": {"kubesphere.io/description": "x"}}}
    assert admin(world, "PATCH", f"{IAM}/globalroles/{name}", json=patch).status_code == 200
    assert rules_of(world, "globalroles", name) == expected
    patch = {"metadata": {"annotations": {"iam.kubesphere.io/aggregation-roles": json.dumps(templates[:1])}}}
    assert admin(world, "PATCH", f"{IAM}/globalroles/{name}", json=patch).status_code == 200
    assert rules_of(world, "globalroles", name) == rules_of(world, "globalroles", templates[0])
    # Without templates, an API-made role has no rules: the submitted ones never count.
    bare = world.name("bare")
    world.cleanup.append(lambda: delete_object(world.custom, "globalroles", bare))
    resp = admin(
        world, "POST", f"{IAM}/globalroles", json={"metadata": {"name": bare}, "rules": body["rules"]}
    )
    assert resp.status_code == 200 and rules_of(world, "globalroles", bare) == []
    missing = {
        "metadata": {
            "name": world.name("miss"),
            "annotations": {"iam.kubesphere.io/aggregation-roles": '["no-such-template"]'},
        }
    }
    assert admin(world, "POST", f"{IAM}/globalroles", json=missing).status_code == 404
    assert admin(world, "DELETE", f"{IAM}/globalroles/{name}").json() == {"message": "success"}


def test_workspace_and_namespace_roles(world: World) -> None:
    ws, ns = world.names["ws"], world.names["ns"]
    role = f"{ws}-custom"
    world.cleanup.append(lambda: delete_object(world.custom, "workspaceroles", role))
    agg = {"iam.kubesphere.io/aggregation-roles": json.dumps([f"{ws}-viewer"])}
    resp = admin(
        world,
        "POST",
        f"{IAM}/workspaces/{ws}/workspaceroles",
        json={"metadata": {"name": role, "annotations": agg, "labels": {"kubesphere.io/workspace": "x"}}},
    )
    assert resp.status_code == 200, resp.text
    stored = world.custom.get_cluster_custom_object(*IAM_GV, "workspaceroles", role)
    assert stored["metadata"]["labels"]["kubesphere.io/workspace"] == ws
    assert stored["rules"] == rules_of(world, "workspaceroles", f"{ws}-viewer")
    world.until("admin", "GET", f"{IAM}/workspaces/{ws}/workspaceroles/{role}", 200)
    listed = admin(world, "GET", f"{IAM}/workspaces/{ws}/workspaceroles", params={"sortBy": "name"}).json()
    names = [r["metadata"]["name"] for r in listed["items"]]
    assert role in names and all(n.startswith(ws) for n in names)
    assert admin(world, "GET", f"{IAM}/workspaceroles").json()["totalItems"] >= len(names)
    squat = {"metadata": {"name": f"someone-else-{world.tag}-admin"}}
    assert admin(world, "POST", f"{IAM}/workspaces/{ws}/workspaceroles", json=squat).status_code == 422
    other_ws = world.workspace("iws2")
    world.until("admin", "GET", f"{IAM}/workspaces/{other_ws}/workspaceroles/{other_ws}-admin", 200)
    assert admin(world, "GET", f"{IAM}/workspaces/{other_ws}/workspaceroles/{role}").status_code == 404
    # A Role aggregated from the namespace's viewer Role.
    resp = admin(
        world,
        "POST",
        f"{IAM}/namespaces/{ns}/roles",
        json={
            "metadata": {
                "name": "reader",
                "annotations": {"iam.kubesphere.io/aggregation-roles": '["viewer"]'},
            }
        },
    )
    assert resp.status_code == 200, resp.text
    rbac = world.rbac
    assert [r.to_dict()["resources"] for r in rbac.read_namespaced_role("reader", ns).rules] == [
        r.to_dict()["resources"] for r in rbac.read_namespaced_role("viewer", ns).rules
    ]
    world.until("admin", "GET", f"{IAM}/namespaces/{ns}/roles/reader", 200)
    assert admin(world, "DELETE", f"{IAM}/namespaces/{ns}/roles/reader").json() == {"message": "success"}


def test_workspace_members(world: World) -> None:
    ws = world.names["ws"]
    member = world.users["other"]
    path = f"{IAM}/workspaces/{ws}/workspacemembers"
    resp = admin(world, "POST", path, json=[{"username": member, "roleRef": f"{ws}-viewer"}])
    assert resp.status_code == 200, resp.text
    for role in ("viewer", "admin"):
        binding_name = f"{member}-{ws}-{role}"
        world.cleanup.append(
            lambda name=binding_name: delete_object(world.custom, "workspacerolebindings", name)
        )
    binding = world.custom.get_cluster_custom_object(
        *IAM_GV, "workspacerolebindings", f"{member}-{ws}-viewer"
    )
    assert binding["metadata"]["labels"] == {
        "kubesphere.io/workspace": ws,
        "iam.kubesphere.io/user-ref": member,
    }

    def listed() -> dict[str, str]:
        items = admin(world, "GET", path).json()["items"]
        return {
            u["metadata"]["name"]: u["metadata"]["annotations"]["iam.kubesphere.io/workspacerole"]
            for u in items
        }

    wait_for(lambda: listed().get(member) == f"{ws}-viewer", timeout=20, what="the member listed")
    # The member reads their own membership; a non-member may read only their own (and is not one).
    assert call(world.server, "GET", f"{path}/{member}", token=world.tokens["other"]).status_code == 200
    assert call(world.server, "GET", f"{path}/{member}", token=world.tokens["regular"]).status_code == 403
    mine = call(world.server, "GET", f"{path}/{world.users['regular']}", token=world.tokens["regular"])
    assert mine.status_code == 404
    # One role per user and scope: the new binding replaces the old one.
    resp = admin(world, "PUT", f"{path}/{member}", json={"username": member, "roleRef": f"{ws}-admin"})
    assert resp.status_code == 200, resp.text
    wait_for(lambda: listed().get(member) == f"{ws}-admin", timeout=20, what="the member's new role")
    names = [
        b["metadata"]["name"]
        for b in world.custom.list_cluster_custom_object(
            *IAM_GV, "workspacerolebindings", label_selector=f"iam.kubesphere.io/user-ref={member}"
        )["items"]
    ]
    assert names == [f"{member}-{ws}-admin"]
    bad = admin(world, "POST", path, json=[{"username": member, "roleRef": "not-a-role"}])
    assert bad.status_code == 404
    assert admin(world, "DELETE", f"{path}/{member}").json() == {"message": "success"}
    wait_for(lambda: member not in listed(), timeout=20, what="the member gone")


def test_namespace_members(world: World) -> None:
    ns = world.names["ns"]
    member = world.users["regular"]
    path = f"{IAM}/namespaces/{ns}/members"
    assert (
        call(world.server, "GET", f"/api/v1/namespaces/{ns}/pods", token=world.tokens["regular"]).status_code
        == 403
    )
    resp = admin(world, "POST", path, json=[{"username": member, "roleRef": "viewer"}])
    assert resp.status_code == 200, resp.text
    world.until("regular", "GET", f"/api/v1/namespaces/{ns}/pods", 200)
    items = admin(world, "GET", path).json()["items"]
    assert [
        (u["metadata"]["name"], u["metadata"]["annotations"]["iam.kubesphere.io/role"]) for u in items
    ] == [(member, "viewer")]
    assert admin(world, "DELETE", f"{path}/{member}").json() == {"message": "success"}
    world.until("regular", "GET", f"/api/v1/namespaces/{ns}/pods", 403)


def test_workspace_groups_and_bindings(world: World) -> None:
    ws = world.names["ws"]
    path = f"{IAM}/workspaces/{ws}/groups"
    no_name = admin(world, "POST", path, json={"metadata": {}})
    assert no_name.status_code == 422
    resp = admin(
        world,
        "POST",
        path,
        json={"metadata": {"generateName": "devs", "labels": {"kubesphere.io/workspace": "x"}}},
    )
    assert resp.status_code == 200, resp.text
    group = resp.json()["metadata"]["name"]
    world.cleanup.append(lambda: delete_object(world.custom, "groups", group))
    assert group.startswith("devs") and resp.json()["metadata"]["labels"]["kubesphere.io/workspace"] == ws
    world.until("admin", "GET", f"{path}/{group}", 200)
    assert admin(world, "POST", path, json={"metadata": {"generateName": "devs"}}).status_code == 409
    member = world.users["other"]
    bindings = f"{IAM}/workspaces/{ws}/groupbindings"
    assert admin(world, "POST", bindings, json=[{"userName": member, "groupName": "nope"}]).status_code == 404
    resp = admin(world, "POST", bindings, json=[{"userName": member, "groupName": group}])
    assert resp.status_code == 200, resp.text
    (made,) = resp.json()  # an array, as KubeSphere answers
    world.cleanup.append(lambda: delete_object(world.custom, "groupbindings", made["metadata"]["name"]))
    assert made["users"] == [member] and made["groupRef"]["name"] == group
    assert made["metadata"]["labels"] == {
        "iam.kubesphere.io/user-ref": member,
        "iam.kubesphere.io/group-ref": group,
        "kubesphere.io/workspace": ws,
    }
    wait_for(
        lambda: admin(world, "GET", bindings).json()["totalItems"] == 1, timeout=20, what="the binding listed"
    )
    # A user with no role in the workspace sees none of it.
    assert call(world.server, "GET", path, token=world.tokens["regular"]).status_code == 403
    assert admin(world, "DELETE", f"{path}/{group}").json() == {"message": "success"}
    wait_for(
        lambda: admin(world, "GET", bindings).json()["totalItems"] == 0, timeout=20, what="the binding gone"
    )


def test_user_made_through_the_api_logs_in_once_the_controller_hashes_it(
    world: World, api_users: list[str], tmp_path: Path
) -> None:
    """Reference case 2, end to end with a real ks-controller-manager (on its own Lease)."""
    manager = Manager(
        kubeconfig=world.cluster.kubeconfig,
        log=tmp_path / "manager.log",
        config=write_config(tmp_path / "kubesphere.yaml"),
        lease=unique("ks-cm-apis"),
    )
    name = unique("tester")
    api_users.append(name)
    manager.start()
    try:
        resp = admin(world, "POST", f"{IAM}/users", json=new_user(name, password="P@88w0rd"))
        assert resp.status_code == 200, resp.text

        def hashed() -> dict[str, Any] | None:
            user = stored_user(world, name)
            ready = (user.get("status") or {}).get("state") == "Active" and user["spec"][
                "password"
            ].startswith("$2")
            return user if ready else None

        wait_for(
            hashed, timeout=CONTROLLER_WAIT, what="the controller to hash the password and activate the user"
        )
        basic = base64.b64encode(f"{name}:P@88w0rd".encode()).decode()
        world.server.wait_user_cached(name, "P@88w0rd")
        me = call(world.server, "GET", f"{IAM}/users/{name}", headers={"Authorization": f"Basic {basic}"})
        assert me.status_code == 200, me.text
        assert me.json()["metadata"]["annotations"]["iam.kubesphere.io/globalrole"] == "platform-regular"
        assert admin(world, "DELETE", f"{IAM}/users/{name}").json() == {"message": "success"}

        def gone() -> bool:
            bindings = world.custom.list_cluster_custom_object(
                *IAM_GV, "globalrolebindings", label_selector=f"iam.kubesphere.io/user-ref={name}"
            )["items"]
            try:
                stored_user(world, name)
            except client.ApiException as exc:
                return exc.status == 404 and not bindings
            return False

        wait_for(gone, timeout=CONTROLLER_WAIT, what="the user and its global role binding deleted")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n---- ks-controller-manager log (tail) ----\n{manager.tail(60)}"
        ) from None
    finally:
        manager.stop()


def test_group_role_bindings_open_a_namespace_and_a_workspace(world: World) -> None:
    """Reference case 3 through the API: a Group's RoleBinding and WorkspaceRoleBinding, bulk routes."""
    ws, ns = world.names["ws"], world.names["ns"]
    member = world.server.make_user(world.name("grp"), PASSWORD, globalrole="platform-regular")
    world.tokens["grp"] = token = world.server.login(member, PASSWORD)
    group = world.name("team")
    pods = f"/api/v1/namespaces/{ns}/pods"
    assert call(world.server, "GET", pods, token=token).status_code == 403
    world.custom.patch_cluster_custom_object(*IAM_GV, "users", member, {"spec": {"groups": [group]}})
    subject = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]
    rb = [{"metadata": {"name": f"{group}-viewer"}, "roleRef": {"name": "viewer"}, "subjects": subject}]
    bad = [{"metadata": {"name": f"{group}-x"}, "roleRef": {"name": "no-such-role"}, "subjects": subject}]
    assert admin(world, "POST", f"{IAM}/namespaces/{ns}/rolebindings", json=bad).status_code == 404
    resp = admin(world, "POST", f"{IAM}/namespaces/{ns}/rolebindings", json=rb)
    assert resp.status_code == 200, resp.text
    assert resp.json()[0]["roleRef"]["kind"] == "Role"
    assert resp.json()[0]["metadata"]["labels"]["iam.kubesphere.io/group-ref"] == group
    world.until("grp", "GET", pods, 200)
    # As the console sends it: no metadata; the server names it <subject>-<role>-<suffix>.
    wrb = [{"roleRef": {"apiGroup": "iam.kubesphere.io", "kind": "WorkspaceRole", "name": f"{ws}-viewer"},
            "subjects": subject}]  # fmt: skip
    resp = admin(world, "POST", f"{IAM}/workspaces/{ws}/workspacerolebindings", json=wrb)
    assert resp.status_code == 200, resp.text
    (made,) = resp.json()
    assert made["metadata"]["name"].startswith(f"{group}-{ws}-viewer-")
    assert made["metadata"]["labels"]["iam.kubesphere.io/group-ref"] == group
    world.cleanup.append(
        lambda: delete_object(world.custom, "workspacerolebindings", made["metadata"]["name"])
    )
    assert made["metadata"]["labels"]["kubesphere.io/workspace"] == ws
    world.until("grp", "GET", f"{IAM}/workspaces/{ws}/workspaceroles", 200)
    listed = admin(
        world, "GET", f"{IAM}/workspaces/{ws}/workspacerolebindings", params={"name": group}
    ).json()
    assert [b["metadata"]["name"] for b in listed["items"]] == [made["metadata"]["name"]]
    gone = admin(world, "DELETE", f"{IAM}/namespaces/{ns}/rolebindings/{group}-viewer")
    assert gone.json() == {"message": "success"}
    assert admin(
        world, "DELETE", f"{IAM}/workspaces/{ws}/workspacerolebindings/{made['metadata']['name']}"
    ).json() == {"message": "success"}
    world.until("grp", "GET", pods, 403)
