"""The removal rules of the inventory (module_utils/removal.py) that need no cluster: what the
data policy keeps, the order of deletions, what pruning considers."""

from __future__ import annotations

from typing import Any

from ansible_collections.kubesphere.installer.plugins.module_utils.removal import (
    Removal,
    key,
    not_applied,
    policy,
    rank,
)


def ref(kind: str, name: str, api_version: str = "v1", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "namespace": "ns", **extra}


def test_the_data_policy_keeps_volumes_data_secrets_and_namespaces() -> None:
    refs = [
        ref("Secret", "credentials"),
        ref("Secret", "redis-secret", data=True),
        ref("PersistentVolumeClaim", "volume"),
        {"apiVersion": "v1", "kind": "Namespace", "name": "ns"},
        ref("Deployment", "app", "apps/v1"),
    ]
    remove, kept = policy(refs, delete_data=False)
    assert [r["name"] for r in remove] == ["app", "credentials"]  # workloads rank before Secrets
    assert {r["name"]: why.split(":")[0] for r, why in kept} == {
        "redis-secret": "holds the component's data (persistence.deleteDataOnDisable removes it)",
        "volume": "holds the component's data (persistence.deleteDataOnDisable removes it)",
        "ns": "namespaces stay",
    }
    remove, kept = policy(refs, delete_data=True)
    assert {r["name"] for r in remove} == {"app", "credentials", "redis-secret", "volume"}
    assert [r["name"] for r, _ in kept] == ["ns"]  # a namespace stays even with the data gone


def test_dependents_go_first() -> None:
    refs = [
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "name": "x.io"},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "name": "r"},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "name": "b"},
        ref("Service", "svc"),
        ref("StatefulSet", "sts", "apps/v1"),
        ref("GlobalRole", "admin", "iam.kubesphere.io/v1alpha2"),
        ref("ValidatingWebhookConfiguration", "w", "admissionregistration.k8s.io/v1"),
    ]
    remove, _ = policy(refs, delete_data=True)
    assert [r["name"] for r in remove] == ["w", "admin", "sts", "svc", "b", "r", "x.io"]
    assert rank(ref("Widget", "w", "example.io/v1")) < rank(ref("Deployment", "d", "apps/v1"))


def test_pruning_matches_by_group_not_version() -> None:
    old = [
        ref("HorizontalPodAutoscaler", "moved", "autoscaling/v1"),
        ref("ConfigMap", "renamed-old"),
        ref("ConfigMap", "same"),
    ]
    now = [ref("HorizontalPodAutoscaler", "moved", "autoscaling/v2"), ref("ConfigMap", "same"),
           ref("ConfigMap", "renamed-new")]  # fmt: skip
    assert [r["name"] for r in not_applied(old, now)] == ["renamed-old"]
    assert key(old[0]) == key(now[0])
    # Another namespace is another object.
    assert not_applied([ref("ConfigMap", "same")], [{**ref("ConfigMap", "same"), "namespace": "other"}])


class Terminating:
    """A Batch whose objects all stay, being deleted and held by ``finalizers``; a clock that
    moves only when the removal pauses."""

    dry_run = False

    def __init__(self, finalizers: dict[str, list[str]]) -> None:
        self.finalizers, self.now = finalizers, 0.0

    def delete(self, obj: dict[str, Any], **_: Any) -> str:
        return "deleted"

    def get(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = {"deletionTimestamp": "now", "finalizers": self.finalizers[obj["metadata"]["name"]]}
        return {**obj, "metadata": {**obj["metadata"], **meta}}

    def pause(self, seconds: float) -> None:
        self.now += seconds


def test_what_waits_only_for_handed_over_finalizers_is_not_a_leftover() -> None:
    ours, theirs = "finalizers.kubesphere.io/users", "example.com/keep"
    batch = Terminating({"admin": [ours], "mixed": [ours, theirs], "other": [theirs]})
    refs = [ref("User", n, "iam.kubesphere.io/v1alpha2") for n in ("admin", "mixed", "other")]
    removal = Removal(batch, delete_data=True, timeout=60, handover=[ours], handover_timeout=5,  # type: ignore[arg-type]
                      clock=lambda: batch.now, pause=batch.pause)  # fmt: skip
    removal.run(refs)
    assert [r["name"] for r in removal.handed_over] == ["admin"]
    assert {r["name"]: why for r, why in removal.leftovers} == {
        "mixed": f"still there after 60 s: deletion waits for finalizers {ours}, {theirs}",
        "other": f"still there after 60 s: deletion waits for finalizers {theirs}",
    }
    assert sorted(r["name"] for r in removal.staying()) == ["admin", "mixed", "other"]
    # Without a handover everything waits the whole timeout and is a leftover.
    plain = Removal(batch, delete_data=True, timeout=60, clock=lambda: batch.now, pause=batch.pause)  # type: ignore[arg-type]
    batch.now = 0.0
    plain.run(refs)
    assert len(plain.leftovers) == 3 and not plain.handed_over and batch.now >= 60
