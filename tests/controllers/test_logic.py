"""Pure logic of the controllers: passwords, rate limits, login history, kubeconfigs, owners, LDAP."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import kopf
import pytest
import yaml

from controllers import kubeconfigs, ldap, loginrecords, namespaces, passwords, ratelimit
from controllers.operator import DiffBase

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def rec(seconds_ago: float, *, success: bool = False, name: str = "r") -> dict[str, Any]:
    created = (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"success": success}}


@pytest.mark.parametrize(
    ("value", "hashed"),
    [
        ("$2a$10$w312tzLTvXObnfEYiIrk9u5Nu/reJpwQeI66vrM1XJETWtpjd1/q2", True),
        ("$2b$10$" + "a" * 53, True),
        ("$2b$10$short", False),
        ("P@88w0rd", False),
        ("", False),
    ],
)
def test_bcrypt_detection(value: str, hashed: bool) -> None:
    assert passwords.is_bcrypt(value) is hashed


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Sh0rt", "8 to 64"),
        ("A1" + "a" * 63, "8 to 64"),
        ("alllowercase1", "an upper-case letter"),
        ("ALLUPPER1", "a lower-case letter"),
        ("NoDigitsHere", "a digit"),
        ("nouppernodigit", "an upper-case letter, a digit"),
    ],
)
def test_weak_passwords_name_what_is_missing(value: str, problem: str) -> None:
    with pytest.raises(passwords.WeakPassword, match=problem):
        passwords.check_plain(value)


def test_good_password_hashes_at_cost_10_and_verifies() -> None:
    passwords.check_plain("P@88w0rd")
    hashed = passwords.hash_password("P@88w0rd")
    assert passwords.is_bcrypt(hashed) and hashed.startswith("$2b$10$")
    assert passwords.verify("P@88w0rd", hashed) and not passwords.verify("P@88w0rD", hashed)


def test_failures_count_inside_the_window_and_after_the_transition() -> None:
    records = [rec(5), rec(50), rec(700), rec(3, success=True)]
    assert ratelimit.count_failures(records, since=None, now=NOW, window=600) == 2
    assert ratelimit.count_failures(records, since=NOW - dt.timedelta(seconds=10), now=NOW, window=600) == 1


def test_limit_reached_then_lifted_after_the_window() -> None:
    ten = [rec(i, name=f"r{i}") for i in range(10)]
    v = ratelimit.verdict(
        state="Active", last_transition=None, records=ten, now=NOW, max_tries=10, window=600
    )
    assert v.state == "AuthLimitExceeded"
    assert v.reason == "Failed login attempts exceed 10 in last 10m0s"
    assert v.recheck_after == 600
    nine = ten[:9]
    v = ratelimit.verdict(
        state="Active", last_transition=None, records=nine, now=NOW, max_tries=10, window=600
    )
    assert v.state == "Active"
    limited_at = NOW - dt.timedelta(seconds=100)
    v = ratelimit.verdict(
        state="AuthLimitExceeded",
        last_transition=limited_at,
        records=ten,
        now=NOW,
        max_tries=10,
        window=600,
        reason="kept",
    )
    assert (v.state, v.reason) == ("AuthLimitExceeded", "kept") and v.recheck_after == pytest.approx(500)
    later = NOW + dt.timedelta(seconds=600)
    v = ratelimit.verdict(
        state="AuthLimitExceeded",
        last_transition=limited_at,
        records=ten,
        now=later,
        max_tries=10,
        window=600,
    )
    assert v.state == "Active"
    # Back to Active: the failures from before that transition no longer count.
    v = ratelimit.verdict(
        state="Active", last_transition=later, records=ten, now=later, max_tries=10, window=600
    )
    assert v.state == "Active"


def test_disabled_is_left_alone() -> None:
    ten = [rec(i) for i in range(10)]
    v = ratelimit.verdict(
        state="Disabled", last_transition=None, records=ten, now=NOW, max_tries=1, window=60
    )
    assert v.state == "Disabled"


def test_history_trims_oldest_and_expired() -> None:
    records = [rec(s, name=f"r{s}") for s in (10, 30, 20, 5000)]
    assert [r["metadata"]["name"] for r in loginrecords.excess(records, keep=2)] == ["r5000", "r30"]
    assert loginrecords.excess(records, keep=10) == []
    assert [r["metadata"]["name"] for r in loginrecords.expired(records, retention=3600, now=NOW)] == [
        "r5000"
    ]
    assert loginrecords.expired(records, retention=0, now=NOW) == []


def test_kubeconfig_starts_with_a_context_and_no_credentials() -> None:
    """The certificate is filed later, by the CSR controller (tests/controllers/test_kubeconfigs.py)."""
    doc = yaml.safe_load(kubeconfigs.build(user="alice", server="https://kubernetes.default.svc"))
    assert doc["current-context"] == "alice@local"
    assert doc["contexts"] == [
        {"name": "alice@local", "context": {"cluster": "local", "user": "alice", "namespace": "default"}}
    ]
    assert doc["clusters"][0]["cluster"] == {"server": "https://kubernetes.default.svc"}
    assert doc["users"] == [{"name": "alice", "user": {}}]
    assert kubeconfigs.configmap_name("alice") == "kubeconfig-alice"


def _ns(owners: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": "n", "ownerReferences": owners}}


def _ws(name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "tenant.kubesphere.io/v1alpha1",
        "kind": "Workspace",
        "metadata": {"name": name, "uid": uid},
    }


def test_namespace_owner_added_repaired_removed_or_left() -> None:
    ws = _ws("w1", "u1")
    added = namespaces.owners_for(_ns([]), ws)
    assert added == [
        {
            "apiVersion": "tenant.kubesphere.io/v1alpha1",
            "kind": "Workspace",
            "name": "w1",
            "uid": "u1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert namespaces.owners_for(_ns(added), ws) is None
    stale = [{**added[0], "uid": "old"}]
    assert namespaces.owners_for(_ns(stale), ws) == added
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "c", "controller": True}
    assert namespaces.owners_for(_ns([other, *stale]), ws) == [{**other, "controller": False}, *added]
    assert namespaces.owners_for(_ns([other, *added]), None) == [other]


class _OneNamespace:
    """The calls namespaces.reconcile makes, on one namespace and two workspaces in memory."""

    def __init__(self) -> None:
        labels = {namespaces.WORKSPACE_LABEL: "w1", namespaces.NAMESPACE_LABEL: "n"}
        self.ns: dict[str, Any] = {
            "metadata": {
                "name": "n",
                "resourceVersion": "1",
                "labels": labels,
                "finalizers": [namespaces.FINALIZER],
            }
        }
        self.workspaces = {w: _ws(w, f"uid-{w}") for w in ("w1", "w2")}

    def get(self, res: Any, name: str, **_: Any) -> dict[str, Any] | None:
        if res.kind == "Namespace":
            return copy.deepcopy(self.ns)
        return copy.deepcopy(self.workspaces.get(name))

    def patch(self, res: Any, name: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        meta = {k: v for k, v in body["metadata"].items() if k != "resourceVersion"}
        self.ns["metadata"].update(meta)
        self.ns["metadata"]["resourceVersion"] = str(int(self.ns["metadata"]["resourceVersion"]) + 1)
        return copy.deepcopy(self.ns)


def test_a_workspace_label_moved_while_the_roles_are_made_is_acted_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kopf marks the object handled as it is when the handler returns; a move during the pass counts."""
    kube = _OneNamespace()
    passes: list[str] = []

    def ensure_roles(ctx: Any, name: str, scope: str) -> None:
        passes.append(kube.ns["metadata"]["labels"][namespaces.WORKSPACE_LABEL])
        if len(passes) == 1:  # the user moves the namespace while its roles are made
            kube.ns["metadata"]["labels"][namespaces.WORKSPACE_LABEL] = "w2"

    monkeypatch.setattr(namespaces, "ensure_roles", ensure_roles)
    namespaces.reconcile(type("Ctx", (), {"kube": kube})(), "n")  # type: ignore[arg-type]
    assert [o["name"] for o in kube.ns["metadata"]["ownerReferences"]] == ["w2"]
    assert passes == ["w1", "w2"]  # and no third pass once nothing moved


def test_ldap_entry_carries_the_hash_in_crypt_form() -> None:
    user = {
        "metadata": {"name": "alice"},
        "spec": {"email": "a@example.com", "password": "$2b$10$" + "x" * 53},
    }
    attrs = ldap.entry_attributes(user)
    assert attrs == {
        "cn": "alice",
        "sn": "alice",
        "uid": "alice",
        "mail": "a@example.com",
        "userPassword": "{CRYPT}$2b$10$" + "x" * 53,
    }
    plain = {"metadata": {"name": "bob"}, "spec": {"email": "b@example.com", "password": "P@88w0rd"}}
    assert "userPassword" not in ldap.entry_attributes(plain), "plain text never reaches LDAP"
    assert ldap.user_dn("a,b", "ou=Users,dc=x") == "uid=a\\,b,ou=Users,dc=x"


def test_kopf_diff_base_never_holds_the_password() -> None:
    storage = DiffBase(prefix="controllers.kubesphere.io", key="last-handled-configuration")
    body = kopf.Body(
        {
            "apiVersion": "v1",
            "kind": "X",
            "metadata": {"name": "a"},
            "spec": {"email": "e", "password": "P@88w0rd"},
        }
    )
    essence = storage.build(body=body)
    assert "P@88w0rd" not in str(essence)
    other = storage.build(body=kopf.Body({**body, "spec": {"email": "e", "password": "0ther0therA"}}))
    assert essence != other, "a changed password is still a change"


def test_owner_mismatch_is_read_from_the_namespace_alone() -> None:
    def ns(name: str = "team-a", ws: str | None = None, owner: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "labels": {namespaces.WORKSPACE_LABEL: ws} if ws else {}}
        if owner:
            meta["ownerReferences"] = [{"apiVersion": "tenant.kubesphere.io/v1alpha1", "kind": "Workspace",
                                        "name": owner}]  # fmt: skip
        return {"metadata": meta}

    assert not namespaces.owner_mismatch(ns(ws="w1", owner="w1"))
    assert not namespaces.owner_mismatch(ns())
    assert namespaces.owner_mismatch(ns(ws="w2", owner="w1"))  # the label moved
    assert namespaces.owner_mismatch(ns(ws="w1"))  # no reference yet
    assert namespaces.owner_mismatch(ns(owner="w1"))  # the label went
    assert not namespaces.owner_mismatch(ns("kubesphere-system", ws="system-workspace"))  # never owned
