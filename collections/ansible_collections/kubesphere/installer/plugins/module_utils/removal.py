# Copyright: kubesphere-installer maintainers
# Apache License 2.0
"""Remove the objects a component's record lists: dependents first, bounded waits, the data kept.

Used by the ``kubesphere.installer.inventory`` action for an uninstall (everything the record
lists) and after an install (what the record lists and the run no longer applied: pruning).

The data policy, the same for both:

* a ``PersistentVolumeClaim``, and any object recorded with ``data: true`` (the Secrets a
  volume's data was initialised with, the admin user), stays unless ``delete_data``;
* a ``CustomResourceDefinition`` stays while objects of it exist, unless ``delete_data``
  (deleting a CRD deletes every object of it);
* a ``Namespace`` always stays: users' objects may live in it.

Deletions go by rank (webhooks, then custom resources, workloads, the rest, bindings, roles,
CRDs), each rank waited for (at most ``timeout`` seconds) before the next starts. An object
still there after the wait, or whose deletion the API server refused, is a *leftover*: it is
reported with its reason and stays in the record, so the next removal tries again. An object
re-created under the same name since it was recorded (another uid) is left alone.

An object whose deletion waits only for finalizers a later step of the same uninstall releases
(``handover``: core's, of the controller manager it removes) is waited for at most
``handover_timeout`` seconds, time for a running controller to finish; then it is *handed
over*: it stays in the record for that later step's removal, and is not a leftover.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from ansible_collections.kubesphere.installer.plugins.module_utils.batch import Batch, BatchError, backoff

Ref = dict[str, Any]

#: Ranks of deletion; kinds not named rank with "the rest", custom resources before workloads.
_RANKS: tuple[frozenset[str], ...] = (
    frozenset({"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService"}),
    frozenset(),  # custom resources (kinds of non-core API groups, see rank())
    frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"}),
    frozenset(),  # the rest: Services, ConfigMaps, Secrets, PVCs, ...
    frozenset({"RoleBinding", "ClusterRoleBinding"}),
    frozenset({"Role", "ClusterRole", "ServiceAccount"}),
    frozenset({"CustomResourceDefinition", "Namespace"}),  # what lives in them is gone by then
)
_CUSTOM, _REST = 1, 3
#: API groups Kubernetes itself serves: objects of other groups are custom resources.
_BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io", "admissionregistration.k8s.io",
    "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "node.k8s.io", "certificates.k8s.io",
    "flowcontrol.apiserver.k8s.io", "events.k8s.io",
})
#: Workloads go with their pods (and a Job's), so a kept volume is released when the wait ends.
_FOREGROUND = _RANKS[2]
_NEVER = frozenset({"Namespace"})


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def key(ref: Ref) -> tuple[str, str, str, str]:
    """Identity of a recorded object: API group (not version: an upgrade may move it), kind, namespace, name."""
    return (group_of(ref.get("apiVersion") or ""), ref["kind"], ref.get("namespace") or "", ref["name"])


def rank(ref: Ref) -> int:
    kind = ref["kind"]
    for i, kinds in enumerate(_RANKS):
        if kind in kinds:
            return i
    return _REST if group_of(ref.get("apiVersion") or "") in _BUILTIN_GROUPS else _CUSTOM


def holds_data(ref: Ref) -> bool:
    return ref["kind"] == "PersistentVolumeClaim" or bool(ref.get("data"))


def describe(ref: Ref) -> str:
    where = f"{ref['namespace']}/" if ref.get("namespace") else ""
    return f"{ref['kind']} {where}{ref['name']}"


def not_applied(recorded: Iterable[Ref], applied: Iterable[Ref]) -> list[Ref]:
    """The recorded objects a run did not apply again (what pruning considers)."""
    now = {key(r) for r in applied}
    return [r for r in recorded if key(r) not in now]


def policy(refs: Iterable[Ref], *, delete_data: bool) -> tuple[list[Ref], list[tuple[Ref, str]]]:
    """``(to remove, [(kept, why)])`` by the rules that need no reads; ordered by rank."""
    remove: list[Ref] = []
    kept: list[tuple[Ref, str]] = []
    for ref in refs:
        if ref["kind"] in _NEVER:
            kept.append((ref, "namespaces stay: other objects may live in them"))
        elif holds_data(ref) and not delete_data:
            kept.append((ref, "holds the component's data (persistence.deleteDataOnDisable removes it)"))
        else:
            remove.append(ref)
    remove.sort(key=rank)
    return remove, kept


def result_entry(ref: Ref, method: str, reason: str | None = None) -> dict[str, Any]:
    out = {k: ref[k] for k in ("apiVersion", "kind", "namespace", "name") if ref.get(k)}
    out["method"] = method
    if reason:
        out["reason"] = reason
    return out


class Removal:
    """Deletes refs through a :class:`Batch`; collects per-object results and leftovers."""

    def __init__(self, batch: Batch, *, delete_data: bool, timeout: float,
                 handover: Iterable[str] = (), handover_timeout: float = 10,
                 clock: Callable[[], float] = time.monotonic, pause: Callable[[float], None] = time.sleep) -> None:
        self.batch = batch
        self.delete_data = delete_data
        self.timeout = timeout
        self.handover = frozenset(handover)
        self.handover_timeout = handover_timeout
        self.clock = clock
        self.pause = pause
        #: One entry per object considered: method deleted, absent or kept (with reason).
        self.results: list[dict[str, Any]] = []
        #: Objects that could not be removed, each with why: they stay in the record.
        self.leftovers: list[tuple[Ref, str]] = []
        #: Objects the policy keeps: they stay in the record when they still exist.
        self.kept: list[Ref] = []
        #: Objects being deleted that wait only for ``handover`` finalizers: they stay in the record.
        self.handed_over: list[Ref] = []

    def run(self, refs: list[Ref]) -> None:
        remove, kept = policy(refs, delete_data=self.delete_data)
        for ref, why in kept:
            self._keep(ref, why)
        for r in sorted({rank(ref) for ref in remove}):
            self._rank([ref for ref in remove if rank(ref) == r])

    def staying(self) -> list[Ref]:
        """What stays in the record: the kept, the leftovers and the handed over."""
        return [*self.kept, *(ref for ref, _ in self.leftovers), *self.handed_over]

    def _keep(self, ref: Ref, why: str) -> None:
        self.results.append(result_entry(ref, "kept", why))
        if ref["kind"] not in _NEVER:
            self.kept.append(ref)

    def _rank(self, refs: list[Ref]) -> None:
        deleted: list[Ref] = []
        for ref in refs:
            if ref["kind"] == "CustomResourceDefinition" and not self.delete_data:
                count = self._objects_of(ref)
                if count:
                    self._keep(ref, f"{count} object(s) of it exist (persistence.deleteDataOnDisable removes them)")
                    continue
            try:
                method = self.batch.delete(
                    _object(ref), uid=ref.get("uid"),
                    propagation="Foreground" if ref["kind"] in _FOREGROUND else None,
                )
            except BatchError as exc:
                text = str(exc)
                if "409" in text and "recondition" in text:
                    self.results.append(result_entry(ref, "kept", "re-created since it was recorded (another uid): left alone"))
                else:
                    self._leftover(ref, f"delete refused: {text}")
                continue
            self.results.append(result_entry(ref, method))
            if method == "deleted":
                deleted.append(ref)
        if deleted and not self.batch.dry_run:
            self._wait_gone(deleted)

    def _objects_of(self, crd_ref: Ref) -> int:
        crd = self.batch.get(_object(crd_ref))
        if crd is None:
            return 0
        spec = crd.get("spec") or {}
        versions = [v.get("name") for v in spec.get("versions") or [] if v.get("served")]
        kind = (spec.get("names") or {}).get("kind")
        if not versions or not kind:
            return 0
        try:
            return len(self.batch.list(f"{spec.get('group')}/{versions[0]}", kind, namespace=None, selectors=[]))
        except BatchError:
            return 0  # not served (any more): nothing of it can exist

    def _wait_gone(self, refs: list[Ref]) -> None:
        start = self.clock()
        deadline = start + self.timeout
        pending = {key(r): r for r in refs}
        why: dict[tuple[str, str, str, str], str] = {}
        intervals = backoff(0.2, 2.0)
        while pending:
            handing_over = self.handover and self.clock() >= start + self.handover_timeout
            for k, ref in list(pending.items()):
                live = self.batch.get(_object(ref))
                if live is None or (ref.get("uid") and (live.get("metadata") or {}).get("uid") != ref["uid"]):
                    del pending[k]
                elif handing_over and self._waits_for_handover(live):
                    self.handed_over.append(pending.pop(k))
                else:
                    why[k] = _blocked(live)
            if not pending or self.clock() >= deadline:
                break
            self.pause(min(next(intervals), max(0.0, deadline - self.clock())))
        for k, ref in pending.items():
            self._leftover(ref, f"still there after {self.timeout:g} s: {why.get(k, 'not deleted yet')}")

    def _waits_for_handover(self, live: dict[str, Any]) -> bool:
        meta = live.get("metadata") or {}
        finalizers = set(meta.get("finalizers") or [])
        return bool(meta.get("deletionTimestamp") and finalizers and finalizers <= self.handover)

    def _leftover(self, ref: Ref, why: str) -> None:
        self.leftovers.append((ref, why))
        for entry in reversed(self.results):
            if (entry.get("kind"), entry.get("namespace", ""), entry.get("name")) == (
                ref["kind"], ref.get("namespace", ""), ref["name"]
            ):
                entry.update(method="leftover", reason=why)
                return
        self.results.append(result_entry(ref, "leftover", why))


def _object(ref: Ref) -> dict[str, Any]:
    meta = {"name": ref["name"], **({"namespace": ref["namespace"]} if ref.get("namespace") else {})}
    return {"apiVersion": ref["apiVersion"], "kind": ref["kind"], "metadata": meta}


def _blocked(live: dict[str, Any]) -> str:
    meta = live.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        finalizers = meta.get("finalizers") or []
        if finalizers:
            return f"deletion waits for finalizers {', '.join(finalizers)}"
        return "being deleted (dependents first)"
    return "not deleted yet"
