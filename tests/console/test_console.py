"""The KubeSphere 3.4 console's calls, page by page, against ks-apiserver and ks-controller-manager.

Each test makes the requests the console makes (paths and query parameters as its stores send them)
and judges the fields the console reads.  The objects are made the way the console makes them:
workspaces and projects through the tenant API, members through the IAM API, and the roles by the
controllers from the core role's RoleBases.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.console.support import (
    IAM,
    PASSWORD,
    TENANT,
    TENANT3,
    WAIT,
    Site,
    call,
    console_rules,
    login,
    template_rules,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# -- login and the dashboard --------------------------------------------------------------------


def test_version_steers_the_console_to_the_3_4_paths(site: Site) -> None:
    """session.js getWorkspaces/getKSConfig: gitVersion's major.minor above 3.2 means tenant v1alpha3."""
    version = site.get("admin", "/kapis/version")
    digits = "".join(c for c in version["gitVersion"] if c.isdigit() or c == ".")
    assert float(".".join(digits.split(".")[:2])) > 3.2
    listed = site.get("admin", f"{TENANT3}/workspacetemplates", params={"limit": 10})
    assert site.ws in [item["metadata"]["name"] for item in listed["items"]]
    assert version["kubernetes"]["gitVersion"].startswith("v1.")  # the console's k8sVersion


def test_login_user_detail_and_global_rules(site: Site) -> None:
    """session.js: login, the user's detail and global rules (the dashboard's menus)."""
    tokens = login(site.server, site.users["admin"])
    access = tokens["access_token"]
    assert _claims(access)["username"] == site.users["admin"]
    detail = site.send("admin", "GET", f"{IAM}/users/{site.users['admin']}", headers={}).json()
    assert detail["spec"]["email"] and "password" not in detail["spec"]
    assert detail["metadata"]["annotations"]["iam.kubesphere.io/globalrole"] == "platform-admin"
    roles = call(site.server, "GET", f"{IAM}/users/{site.users['admin']}/globalroles", access)
    assert roles.status_code == 200 and isinstance(roles.json(), list)
    rules = console_rules(roles.json())
    assert rules == template_rules("global", "platform-admin")
    assert {"users", "workspaces", "clusters", "roles"} <= set(rules) and "manage" in rules["users"]


def test_refresh_with_the_refresh_token_as_bearer(site: Site) -> None:
    """session.js getNewToken: the refresh grant with Authorization: Bearer <refresh_token>."""
    first = login(site.server, site.users["regular"])
    resp = call(
        site.server,
        "POST",
        "/oauth/token",
        first["refresh_token"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": "kubesphere",
            "client_secret": "kubesphere",
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["access_token"] and body["refresh_token"] and body["expires_in"] == 7200
    me = call(site.server, "GET", f"{IAM}/users/{site.users['regular']}", body["access_token"])
    assert me.status_code == 200


# -- permissions at each scope --------------------------------------------------------------


def test_permissions_of_a_platform_admin(site: Site) -> None:
    admin = site.users["admin"]
    assert console_rules(site.get("admin", f"{IAM}/users/{admin}/globalroles")) == template_rules(
        "global", "platform-admin"
    )
    # A platform admin is a cluster admin (the globalrolebinding controller binds cluster-admin).
    wait_for(
        lambda: site.get("admin", f"{IAM}/clustermembers/{admin}/clusterroles"),
        timeout=WAIT,
        what="cluster-admin bound",
    )
    cluster = console_rules(site.get("admin", f"{IAM}/clustermembers/{admin}/clusterroles"))
    assert cluster == template_rules("cluster", "cluster-admin")
    assert cluster["nodes"] == ["manage", "view"]
    # Not a member of the workspace or the project: no rules there (the console uses its global ones).
    assert site.get("admin", f"{IAM}/workspaces/{site.ws}/workspacemembers/{admin}/workspaceroles") == []


def test_permissions_of_a_workspace_admin(site: Site) -> None:
    who = site.users["wsadmin"]
    got = site.get("wsadmin", f"{IAM}/workspaces/{site.ws}/workspacemembers/{who}/workspaceroles")
    assert got and all("iam.kubesphere.io/role-template-rules" in r["metadata"]["annotations"] for r in got)
    rules = console_rules(got)
    assert rules == template_rules("workspace", "admin")
    assert rules["projects"] == ["create", "manage", "view"] and "manage" in rules["members"]
    assert console_rules(site.get("wsadmin", f"{IAM}/users/{who}/globalroles")) == template_rules(
        "global", "platform-regular"
    )
    # The project's creator is its admin (the namespace controller binds them).
    wait_for(
        lambda: site.get("wsadmin", f"{IAM}/namespaces/{site.ns}/members/{who}/roles"),
        timeout=WAIT,
        what="creator binding",
    )
    project = console_rules(site.get("wsadmin", f"{IAM}/namespaces/{site.ns}/members/{who}/roles"))
    assert project == template_rules("namespace", "admin")
    assert site.get("wsadmin", f"{IAM}/clustermembers/{who}/clusterroles") == []


def test_permissions_of_a_project_viewer(site: Site) -> None:
    who = site.users["viewer"]
    got = site.get("viewer", f"{IAM}/namespaces/{site.ns}/members/{who}/roles")
    assert {r["metadata"]["namespace"] for r in got} == {site.ns}
    rules = console_rules(got)
    assert rules == template_rules("namespace", "viewer")
    assert all(actions == ["view"] for actions in rules.values()), rules
    assert site.get("viewer", f"{IAM}/workspaces/{site.ws}/workspacemembers/{who}/workspaceroles") == []


def test_permissions_of_a_regular_user(site: Site) -> None:
    who = site.users["regular"]
    rules = console_rules(site.get("regular", f"{IAM}/users/{who}/globalroles"))
    assert rules == template_rules("global", "platform-regular") == {"app-templates": ["view"]}
    assert site.get("regular", f"{IAM}/workspaces/{site.ws}/workspacemembers/{who}/workspaceroles") == []
    assert site.get("regular", f"{IAM}/namespaces/{site.ns}/members/{who}/roles") == []
    # Another user's permissions are not theirs to read.
    other = site.send("regular", "GET", f"{IAM}/users/{site.users['admin']}/globalroles")
    assert other.status_code == 403


# -- Access Control and the workspace pages --------------------------------------------------


def test_role_lists_the_console_shows(site: Site) -> None:
    """role.js: lists filtered by the creator annotation; templates by the role-template label."""
    query = {"annotation": "kubesphere.io/creator", "sortBy": "createTime", "limit": "10", "page": "1"}
    names = {r["metadata"]["name"] for r in site.get("admin", f"{IAM}/globalroles", params=query)["items"]}
    assert {"platform-admin", "platform-regular", "platform-self-provisioner"} <= names
    assert not {n for n in names if n.startswith("role-template-")}
    ws_roles = site.get("wsadmin", f"{IAM}/workspaces/{site.ws}/workspaceroles", params=query)["items"]
    assert {r["metadata"]["name"] for r in ws_roles} == {
        f"{site.ws}-{r}" for r in ("admin", "regular", "viewer", "self-provisioner")
    }
    ns_roles = site.get("wsadmin", f"{IAM}/namespaces/{site.ns}/roles", params=query)["items"]
    assert {r["metadata"]["name"] for r in ns_roles} == {"admin", "operator", "viewer"}
    templates = site.get(
        "admin", f"{IAM}/globalroles", params={"label": "iam.kubesphere.io/role-template=true", "limit": "-1"}
    )
    modules = {r["metadata"]["annotations"].get("iam.kubesphere.io/module") for r in templates["items"]}
    assert {"Access Control", "Clusters Management", "Apps Management", "Platform Settings"} <= modules
    project_templates = site.get(
        "wsadmin",
        f"{IAM}/namespaces/{site.ns}/roles",
        params={"label": "iam.kubesphere.io/role-template=true"},
    )
    assert project_templates["totalItems"] >= 20
    cluster_templates = site.get(
        "admin",
        f"{IAM}/clusterroles",
        params={"label": "iam.kubesphere.io/role-template=true", "limit": "-1"},
    )
    assert "role-template-view-nodes" in {r["metadata"]["name"] for r in cluster_templates["items"]}
    assert "cluster-viewer" in {
        r["metadata"]["name"] for r in site.get("admin", f"{IAM}/clusterroles")["items"]
    }


def test_member_namespaces(site: Site) -> None:
    """project.js: a member's projects in the workspace."""
    params = {"sortBy": "createTime", "limit": "10"}
    path = f"{TENANT}/workspaces/{site.ws}/workspacemembers/{site.users['viewer']}/namespaces"
    mine = site.get("viewer", path, params=params)
    assert [n["metadata"]["name"] for n in mine["items"]] == [site.ns] and mine["totalItems"] == 1
    # The workspace admin may look at a member's projects; another regular user may not.
    assert site.get("wsadmin", path)["totalItems"] == 1
    assert site.send("regular", "GET", path).status_code == 403
    nothing = f"{TENANT}/workspaces/{site.ws}/workspacemembers/{site.users['regular']}/namespaces"
    assert site.get("regular", nothing) == {"items": [], "totalItems": 0}


# -- the Workspaces page (tenant v1alpha3) ------------------------------------------------------


def test_workspaces_page(site: Site) -> None:
    """workspace.js: list, name check, create, detail, edit (merge patch), delete through v1alpha3."""
    params = {"sortBy": "createTime", "limit": "10", "page": "1"}
    listed = site.get("admin", f"{TENANT3}/workspacetemplates", params=params)
    assert listed["totalItems"] >= 2 and len(listed["items"]) <= 10
    mine = site.get("wsadmin", f"{TENANT3}/workspaces")
    assert [w["metadata"]["name"] for w in mine["items"]] == [site.ws]
    check = {"x-check-exist": "true"}
    name = f"cnew-{site.tag}"
    taken = site.send("admin", "GET", f"{TENANT3}/workspacetemplates/{site.ws}", headers=check)
    assert taken.status_code == 200 and taken.json() == {"exist": True}
    assert site.send("admin", "GET", f"{TENANT3}/workspacetemplates/{name}", headers=check).status_code == 404
    # A caller who cannot create workspaces learns nothing about one they cannot see.
    assert (
        site.send("regular", "GET", f"{TENANT3}/workspacetemplates/{site.ws}", headers=check).status_code
        == 403
    )

    body = {
        "apiVersion": "tenant.kubesphere.io/v1alpha2",
        "kind": "WorkspaceTemplate",
        "metadata": {"name": name, "annotations": {"kubesphere.io/creator": site.users["admin"]}},
        "spec": {"template": {"spec": {"manager": site.users["admin"]}}},
    }
    assert site.send("regular", "POST", f"{TENANT3}/workspacetemplates", json=body).status_code == 403
    made = site.send("admin", "POST", f"{TENANT3}/workspacetemplates", json=body)
    assert made.status_code == 200, made.text
    try:
        assert made.json()["metadata"]["name"] == name
        wait_for(
            lambda: site.send("admin", "GET", f"{TENANT3}/workspacetemplates/{name}").status_code == 200,
            timeout=30,
            what="the new workspace listed",
        )
        detail = site.get("admin", f"{TENANT3}/workspaces/{name}")
        assert detail["spec"]["template"]["spec"]["manager"] == site.users["admin"]
        patch = {"metadata": {"annotations": {"kubesphere.io/alias-name": "Console Team"}}}
        edited = site.send(
            "admin",
            "PATCH",
            f"{TENANT3}/workspacetemplates/{name}",
            data=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert edited.status_code == 200, edited.text
        assert edited.json()["metadata"]["annotations"]["kubesphere.io/alias-name"] == "Console Team"
    finally:
        gone = site.send("admin", "DELETE", f"{TENANT3}/workspacetemplates/{name}")
        assert gone.status_code == 200 and gone.json() == {"message": "success"}
    wait_for(
        lambda: site.send("admin", "GET", f"{TENANT3}/workspacetemplates/{name}").status_code == 404,
        timeout=WAIT,
        what="the workspace gone",
    )


# -- groups (workspace settings: Department Management) ---------------------------------------


def test_a_groups_workspace_role_opens_the_projects_until_unbound(site: Site) -> None:
    """group.js: create a group, give it a workspace role (no metadata), add a user, then remove them."""
    ws, who = site.ws, site.users["regular"]
    pods = f"/api/v1/namespaces/{site.ns}/pods"
    assert site.send("regular", "GET", pods).status_code == 403
    made = site.send(
        "wsadmin",
        "POST",
        f"{IAM}/workspaces/{ws}/groups",
        json={"metadata": {"generateName": "team", "annotations": {"kubesphere.io/alias-name": "Team"}}},
    )
    assert made.status_code == 200, made.text
    group = made.json()["metadata"]["name"]
    subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}
    role = {"apiGroup": "iam.kubesphere.io", "kind": "WorkspaceRole", "name": f"{ws}-viewer"}
    bound = site.send(
        "wsadmin",
        "POST",
        f"{IAM}/workspaces/{ws}/workspacerolebindings",
        json=[{"subjects": [subject], "roleRef": role}],
    )
    assert bound.status_code == 200, bound.text
    (binding,) = bound.json()
    assert binding["metadata"]["name"].startswith(f"{group}-{ws}-viewer-")
    assert binding["metadata"]["labels"]["iam.kubesphere.io/group-ref"] == group
    assert binding["metadata"]["labels"]["kubesphere.io/workspace"] == ws
    added = site.send(
        "wsadmin",
        "POST",
        f"{IAM}/workspaces/{ws}/groupbindings",
        json=[{"userName": who, "groupName": group}],
    )
    assert added.status_code == 200, added.text
    (membership,) = added.json()
    assert membership["metadata"]["labels"]["iam.kubesphere.io/group-ref"] == group
    try:
        # The groupbinding controller puts the group into spec.groups, which RBAC reads.
        wait_for(
            lambda: site.send("regular", "GET", pods).status_code == 200, timeout=WAIT, what="group access"
        )
        user = site.custom.get_cluster_custom_object("iam.kubesphere.io", "v1alpha2", "users", who)
        assert user["spec"]["groups"] == [group]
        rules = console_rules(
            site.get("regular", f"{IAM}/workspaces/{ws}/workspacemembers/{who}/workspaceroles")
        )
        assert rules == template_rules("workspace", "viewer") and rules["projects"] == ["view"]
        listed = site.get("regular", f"{TENANT}/workspaces/{ws}/workspacemembers/{who}/namespaces")
        assert [n["metadata"]["name"] for n in listed["items"]] == [site.ns]
    finally:
        gone = site.send(
            "wsadmin", "DELETE", f"{IAM}/workspaces/{ws}/groupbindings/{membership['metadata']['name']}"
        )
        assert gone.status_code == 200 and gone.json() == {"message": "success"}
    wait_for(lambda: site.send("regular", "GET", pods).status_code == 403, timeout=WAIT, what="access gone")
    user = site.custom.get_cluster_custom_object("iam.kubesphere.io", "v1alpha2", "users", who)
    assert not user["spec"].get("groups")
    assert site.get("regular", f"{IAM}/workspaces/{ws}/workspacemembers/{who}/workspaceroles") == []


# -- first login (PasswordConfirm) ----------------------------------------------------------


def _console_user(site: Site, key: str) -> str:
    """A user as the console's Access Control page creates one: plain password, marked uninitialized."""
    name = f"c{key}-{site.tag}"
    body = {
        "apiVersion": "iam.kubesphere.io/v1alpha2",
        "kind": "User",
        "metadata": {
            "name": name,
            "annotations": {
                "iam.kubesphere.io/uninitialized": "true",
                "iam.kubesphere.io/globalrole": "platform-regular",
                "kubesphere.io/creator": site.users["admin"],
            },
        },
        "spec": {"email": f"{name}@example.com", "password": PASSWORD},
    }
    made = site.send("admin", "POST", f"{IAM}/users", json=body)
    assert made.status_code == 200, made.text
    site.server.users.created.append(name)
    site.server.wait_user_cached(name, PASSWORD)  # hashed and Active (the user controller)
    return name


def _json_patch(site: Site, token: str, name: str, ops: Any, **kw: Any) -> Any:
    return call(
        site.server,
        "PATCH",
        f"/apis/iam.kubesphere.io/v1alpha2/users/{name}",
        token,
        data=json.dumps(ops),
        headers={"Content-Type": kw.pop("content_type", "application/json-patch+json")},
    )


MARK = {"op": "remove", "path": "/metadata/annotations/iam.kubesphere.io~1uninitialized"}


def test_first_login_sets_a_password_and_nothing_else(site: Site) -> None:
    name = _console_user(site, "first")
    first = login(site.server, name)
    assert _claims(first["access_token"])["extra"] == {"uninitialized": ["true"]}  # -> /password/confirm
    token = first["access_token"]
    # Not their groups, state or labels, not with a merge patch, not with the password alongside.
    for ops in (
        [{"op": "add", "path": "/spec/groups", "value": ["admins"]}],
        [MARK, {"op": "replace", "path": "/status/state", "value": "Active"}],
        [MARK, {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}],
    ):
        refused = _json_patch(site, token, name, ops)
        assert refused.status_code == 403, (ops, refused.text)
    merge = _json_patch(
        site, token, name, {"spec": {"groups": ["admins"]}}, content_type="application/merge-patch+json"
    )
    assert merge.status_code == 403
    # A password without clearing the mark is refused; a weak one is 422.
    lone = _json_patch(
        site, token, name, [{"op": "replace", "path": "/spec/password", "value": "N3w-Passw0rd"}]
    )
    assert lone.status_code == 403
    weak = _json_patch(
        site, token, name, [MARK, {"op": "replace", "path": "/spec/password", "value": "weak"}]
    )
    assert weak.status_code == 422
    # What PasswordConfirm sends.
    new = "N3w-Console-Passw0rd"
    done = _json_patch(site, token, name, [MARK, {"op": "replace", "path": "/spec/password", "value": new}])
    assert done.status_code == 200, done.text
    assert "password" not in done.json()["spec"]
    assert "iam.kubesphere.io/uninitialized" not in done.json()["metadata"].get("annotations", {})
    site.server.wait_user_cached(name, new)
    again = login(site.server, name, new)
    assert "uninitialized" not in (_claims(again["access_token"]).get("extra") or {})
    user = site.custom.get_cluster_custom_object("iam.kubesphere.io", "v1alpha2", "users", name)
    assert not user["spec"].get("groups") and user["status"]["state"] == "Active"
    # The mark is gone: the same patch no longer changes the password (the current one is needed).
    later = _json_patch(
        site,
        again["access_token"],
        name,
        [{"op": "replace", "path": "/spec/password", "value": "Th1rd-Passw0rd"}],
    )
    assert later.status_code == 403
    # Nobody else's User either.
    other = _json_patch(site, again["access_token"], site.users["regular"], [MARK])
    assert other.status_code == 403


def test_first_login_skipped_clears_only_the_mark(site: Site) -> None:
    name = _console_user(site, "skip")
    token = login(site.server, name)["access_token"]
    skipped = _json_patch(site, token, name, [MARK])
    assert skipped.status_code == 200, skipped.text
    user = site.custom.get_cluster_custom_object("iam.kubesphere.io", "v1alpha2", "users", name)
    assert "iam.kubesphere.io/uninitialized" not in user["metadata"].get("annotations", {})
    site.server.wait_user_cached(name, PASSWORD)  # the password is the one the admin set
    assert login(site.server, name)["access_token"]
