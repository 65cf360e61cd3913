"""The user, loginrecord and globalrolebinding controllers against the real cluster and slapd."""

from __future__ import annotations

import base64
from typing import Any

import bcrypt
import pytest
import yaml
from cryptography import x509

from tests.conftest import Cluster
from tests.controllers.conftest import MAX_ENTRIES, RETENTION, WINDOW
from tests.controllers.support import Manager, Objects, unique
from tests.helpers import wait_for
from tests.services import Slapd

pytestmark = pytest.mark.cluster

IAM = "iam.kubesphere.io/v1alpha2"
PASSWORD = "P@88w0rdTest1"


def new_user(objects: Objects, *, password: str = PASSWORD, **spec: Any) -> str:
    name = unique("u")
    objects.create(
        {
            "apiVersion": IAM,
            "kind": "User",
            "metadata": {"name": name},
            "spec": {"email": f"{name}@example.com", "password": password, **spec},
        }
    )
    return name


def user(objects: Objects, name: str) -> dict[str, Any]:
    got = objects.get(IAM, "User", name)
    assert got is not None, f"user {name} is gone"
    return got


def state(objects: Objects, name: str) -> str | None:
    return (user(objects, name).get("status") or {}).get("state")


def record(objects: Objects, name: str, *, success: bool) -> None:
    objects.create(
        {
            "apiVersion": IAM,
            "kind": "LoginRecord",
            "metadata": {"generateName": f"{name}-", "labels": {"iam.kubesphere.io/user-ref": name}},
            "spec": {
                "type": "Token",
                "provider": "",
                "sourceIP": "127.0.0.1",
                "userAgent": "pytest",
                "success": success,
                "reason": "authenticated successfully" if success else "incorrect password",
            },
        }
    )


def records(objects: Objects, name: str) -> list[dict[str, Any]]:
    return objects.list(IAM, "LoginRecord", labels=f"iam.kubesphere.io/user-ref={name}")


def test_plain_password_becomes_bcrypt_and_user_active(manager: Manager, objects: Objects) -> None:
    name = new_user(objects)
    wait_for(lambda: state(objects, name) == "Active", timeout=30, what=f"user {name} Active")
    u = user(objects, name)
    hashed = u["spec"]["password"]
    assert hashed.startswith("$2") and bcrypt.checkpw(PASSWORD.encode(), hashed.encode())
    assert hashed.split("$")[2] == "10", "bcrypt cost 10"
    assert u["metadata"]["annotations"]["iam.kubesphere.io/last-password-change-time"]
    assert "finalizers.kubesphere.io/users" in u["metadata"]["finalizers"]
    assert u["status"]["lastTransitionTime"]
    assert PASSWORD not in yaml.safe_dump(u), "the plain password survives somewhere on the object"
    assert PASSWORD not in manager.log.read_text(), "the plain password was logged"

    cm = wait_for(
        lambda: objects.get("v1", "ConfigMap", f"kubeconfig-{name}", "kubesphere-controls-system"),
        timeout=20,
        what="kubeconfig ConfigMap",
    )
    assert cm["metadata"]["ownerReferences"][0]["uid"] == u["metadata"]["uid"]
    kubeconfig = yaml.safe_load(cm["data"]["config"])
    assert kubeconfig["current-context"] == f"{name}@local"
    assert kubeconfig["contexts"][0]["context"]["namespace"] == "default"

    # The client certificate comes through a CSR the CSR controller approves and then deletes.
    def filed() -> dict[str, Any] | None:
        c = objects.get("v1", "ConfigMap", f"kubeconfig-{name}", "kubesphere-controls-system")
        return c if c and "client-certificate-data" in c["data"]["config"] else None

    cm = wait_for(filed, timeout=60, what="the kubeconfig's client certificate")
    entry = yaml.safe_load(cm["data"]["config"])["users"][0]
    assert entry["name"] == name and set(entry["user"]) == {"client-certificate-data", "client-key-data"}
    cert = x509.load_pem_x509_certificate(base64.b64decode(entry["user"]["client-certificate-data"]))
    assert cert.subject.rfc4514_string() == f"CN={name}"
    wait_for(
        lambda: not objects.list("certificates.k8s.io/v1", "CertificateSigningRequest",
                                 labels=f"kubesphere.io/username={name}"),
        timeout=30, what="the CSR deleted once filed",
    )  # fmt: skip


def test_changed_password_is_hashed_again(manager: Manager, objects: Objects) -> None:
    name = new_user(objects)
    wait_for(lambda: state(objects, name) == "Active", timeout=30, what="Active")
    first = user(objects, name)["spec"]["password"]
    objects.patch(IAM, "User", name, {"spec": {"password": "N3wPassword"}})
    wait_for(
        lambda: user(objects, name)["spec"]["password"] not in (first, "N3wPassword"),
        timeout=30,
        what="the new password hashed",
    )
    assert bcrypt.checkpw(b"N3wPassword", user(objects, name)["spec"]["password"].encode())


def test_weak_password_is_reported_not_retried(
    manager: Manager, objects: Objects, platform_crds: Cluster
) -> None:
    name = new_user(objects, password="weak")
    u = wait_for(lambda: (s := user(objects, name)).get("status") and s, timeout=30, what="a status")
    assert u["status"]["state"] == "Disabled"
    assert u["status"]["reason"].startswith("Invalid password: must be 8 to 64")
    assert u["spec"]["password"] == "weak", "a rejected password is not hashed"
    events = wait_for(
        lambda: [
            e
            for e in objects.list("v1", "Event", namespace="default")
            if e["involvedObject"]["name"] == name and e["type"] == "Warning"
        ],
        timeout=20,
        what="a Warning event",
    )
    assert "password" in events[0]["message"]
    # Fixed by a person: the user becomes usable.
    objects.patch(IAM, "User", name, {"spec": {"password": PASSWORD}})
    wait_for(lambda: state(objects, name) == "Active", timeout=30, what="Active after the fix")


def test_failed_logins_limit_the_user_until_the_window_passes(manager: Manager, objects: Objects) -> None:
    name = new_user(objects)
    wait_for(lambda: state(objects, name) == "Active", timeout=30, what="Active")
    for _ in range(9):
        record(objects, name, success=False)
    wait_for(
        lambda: (user(objects, name).get("status") or {}).get("lastLoginTime"),
        timeout=20,
        what="lastLoginTime",
    )
    assert state(objects, name) == "Active", "nine failures are below the limit of ten"
    record(objects, name, success=False)
    wait_for(lambda: state(objects, name) == "AuthLimitExceeded", timeout=20, what="AuthLimitExceeded")
    assert (
        user(objects, name)["status"]["reason"] == f"Failed login attempts exceed 10 in last {int(WINDOW)}s"
    )
    wait_for(lambda: state(objects, name) == "Active", timeout=WINDOW + 30, what="Active after the window")
    # Login history: records older than the retention period go.
    wait_for(
        lambda: not records(objects, name), timeout=RETENTION + 30, what="records past retention deleted"
    )


def test_login_history_keeps_the_newest_entries(manager: Manager, objects: Objects) -> None:
    name = new_user(objects)
    wait_for(lambda: state(objects, name) == "Active", timeout=30, what="Active")
    for _ in range(MAX_ENTRIES + 4):
        record(objects, name, success=True)
    wait_for(lambda: len(records(objects, name)) == MAX_ENTRIES, timeout=30, what=f"{MAX_ENTRIES} records")
    assert state(objects, name) == "Active"


def test_deleting_a_user_removes_its_bindings_and_records(
    manager: Manager, objects: Objects, namespace: str
) -> None:
    name = new_user(objects)
    wait_for(lambda: state(objects, name) == "Active", timeout=30, what="Active")
    ref = {"iam.kubesphere.io/user-ref": name}
    subject = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}]
    rbac = "rbac.authorization.k8s.io/v1"
    made = [
        objects.create(
            {
                "apiVersion": IAM,
                "kind": "GlobalRoleBinding",
                "metadata": {"name": f"{name}-platform-regular", "labels": ref},
                "roleRef": {
                    "apiGroup": "iam.kubesphere.io",
                    "kind": "GlobalRole",
                    "name": "platform-regular",
                },
                "subjects": subject,
            }
        ),
        objects.create(
            {
                "apiVersion": IAM,
                "kind": "WorkspaceRoleBinding",
                "metadata": {"name": f"{name}-ws-viewer", "labels": ref},
                "roleRef": {"apiGroup": "iam.kubesphere.io", "kind": "WorkspaceRole", "name": "ws-viewer"},
                "subjects": subject,
            }
        ),
        objects.create(
            {
                "apiVersion": rbac,
                "kind": "RoleBinding",
                "metadata": {"name": f"{name}-viewer", "namespace": namespace, "labels": ref},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
                "subjects": subject,
            }
        ),
        objects.create(
            {
                "apiVersion": rbac,
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{name}-view", "labels": ref},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": subject,
            }
        ),
        objects.create(
            {
                "apiVersion": IAM,
                "kind": "GroupBinding",
                "metadata": {"name": f"g1-{name}", "labels": ref},
                "groupRef": {"apiGroup": "iam.kubesphere.io", "kind": "Group", "name": "g1"},
                "users": [name],
            }
        ),
    ]
    record(objects, name, success=True)
    record(objects, name, success=False)
    wait_for(lambda: len(records(objects, name)) == 2, timeout=10, what="two records")
    objects.delete(IAM, "User", name)
    wait_for(lambda: objects.get(IAM, "User", name) is None, timeout=30, what="the user gone")
    for obj in made:  # deleted with the user; one with a finalizer goes once its controller lets go
        meta = obj["metadata"]
        wait_for(
            lambda m=meta, o=obj: (
                objects.get(o["apiVersion"], o["kind"], m["name"], m.get("namespace")) is None
            ),
            timeout=30,
            what=f"{obj['kind']} {meta['name']} gone",
        )
    assert records(objects, name) == []


def _ldap_entry(slapd: Slapd, name: str) -> dict[str, Any] | None:
    with slapd.connect() as conn:
        conn.search(f"ou=Users,{slapd.base_dn}", f"(uid={name})", attributes=["mail", "cn", "userPassword"])
        return dict(conn.entries[0].entry_attributes_as_dict) if conn.entries else None


def test_ldap_entry_follows_the_user(manager: Manager, objects: Objects, slapd: Slapd) -> None:
    name = new_user(objects)
    entry = wait_for(lambda: _ldap_entry(slapd, name), timeout=30, what="LDAP entry")
    assert entry["mail"] == [f"{name}@example.com"]
    wait_for(
        lambda: (e := _ldap_entry(slapd, name)) and e.get("userPassword"), timeout=30, what="userPassword"
    )
    stored = _ldap_entry(slapd, name)["userPassword"][0]
    stored = stored.decode() if isinstance(stored, bytes) else stored
    assert stored.startswith("{CRYPT}$2") and PASSWORD not in stored
    dn = f"uid={name},ou=Users,{slapd.base_dn}"
    with slapd.connect(dn, PASSWORD) as conn:
        assert conn.bound, f"simple bind as the user with its password: {conn.result}"

    objects.patch(IAM, "User", name, {"spec": {"email": f"changed-{name}@example.com"}})
    wait_for(
        lambda: (_ldap_entry(slapd, name) or {}).get("mail") == [f"changed-{name}@example.com"],
        timeout=30,
        what="LDAP mail updated",
    )
    objects.delete(IAM, "User", name)
    wait_for(lambda: _ldap_entry(slapd, name) is None, timeout=30, what="LDAP entry deleted")


def test_platform_admin_gets_cluster_admin(manager: Manager, objects: Objects) -> None:
    name = new_user(objects)
    grb = unique("grb")
    objects.create(
        {
            "apiVersion": IAM,
            "kind": "GlobalRoleBinding",
            "metadata": {"name": grb},
            "roleRef": {"apiGroup": "iam.kubesphere.io", "kind": "GlobalRole", "name": "platform-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}],
        }
    )
    rbac = "rbac.authorization.k8s.io/v1"
    crb = wait_for(
        lambda: objects.get(rbac, "ClusterRoleBinding", f"{name}-cluster-admin"),
        timeout=30,
        what="ClusterRoleBinding",
    )
    assert crb["roleRef"]["name"] == "cluster-admin"
    assert crb["subjects"][0]["name"] == name
    objects.delete(IAM, "GlobalRoleBinding", grb)
    wait_for(
        lambda: objects.get(rbac, "ClusterRoleBinding", f"{name}-cluster-admin") is None,
        timeout=60,
        what="ClusterRoleBinding removed with its GlobalRoleBinding",
    )
