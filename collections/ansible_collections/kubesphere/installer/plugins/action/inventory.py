# Copyright: kubesphere-installer maintainers
# Apache License 2.0
"""The ``kubesphere.installer.inventory`` action: what a component owns, recorded and removed.

Documentation: ``plugins/modules/inventory.py``; the removal rules: ``module_utils/removal.py``.
"""

from __future__ import annotations

import json
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubesphere.installer.plugins.module_utils.batch import (
    APPLIED_FACT,
    Batch,
    BatchError,
    merge_refs,
    ref_of,
)
from ansible_collections.kubesphere.installer.plugins.module_utils.removal import (
    Ref,
    Removal,
    describe,
    not_applied,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "component": {"type": "str", "required": True},
    "namespace": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "version": {"type": "str", "default": ""},
    "prune": {"type": "bool", "default": True},
    "delete_data": {"type": "bool", "default": False},
    "skip_kinds": {"type": "list", "elements": "str", "default": []},
    "adopt_labels": {"type": "dict", "default": {}},
    "wait_timeout": {"type": "int", "default": 120},
    "handover_finalizers": {"type": "list", "elements": "str", "default": []},
    **AUTH_ARG_SPEC,
}
LABEL = "installer.kubesphere.io/inventory"
KEY = "objects.json"


def inventory_name(component: str) -> str:
    return f"ks-installer-inventory-{component}"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        validation, _ = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        params = validation.validated_parameters
        check_mode = bool(self._task.check_mode)
        try:
            batch = Batch.connect(params, dry_run=check_mode)
            record = Record(batch, params["component"], params["namespace"], params["version"])
            applied = (task_vars.get("ansible_facts") or {}).get(APPLIED_FACT) or []
            if params["state"] == "absent":
                out = self._uninstall(batch, record, params)
            else:
                out = self._install(batch, record, params, applied)
        except BatchError as exc:
            raise AnsibleActionFail(str(exc)) from None
        result.update(out)
        # The next component of the same play starts its own record.
        result["ansible_facts"] = {APPLIED_FACT: []}
        return result

    # -- the two states ----------------------------------------------------------------------------
    def _uninstall(self, batch: Batch, record: Record, params: dict[str, Any]) -> dict[str, Any]:
        """Remove what the record lists (but skip_kinds); the record keeps only what stays."""
        listed = record.read()
        if listed is None and params["adopt_labels"]:
            # No record (installed by a version that kept none): what carries the component's labels.
            listed = record.adopt(None, params["adopt_labels"])
        skipped = [r for r in listed or [] if r["kind"] in params["skip_kinds"]]
        removal = self._removal(batch, params)
        removal.run([r for r in listed or [] if r["kind"] not in params["skip_kinds"]])
        remaining = merge_refs(skipped, removal.staying())
        changed = any(e["method"] == "deleted" for e in removal.results)
        if listed is not None and not batch.dry_run:
            changed = record.write(remaining) or changed
        return self._report(removal, changed=changed, recorded=listed is not None)

    def _install(self, batch: Batch, record: Record, params: dict[str, Any], applied: list[Ref]) -> dict[str, Any]:
        """Replace the record with what the run applied; remove what it no longer applies."""
        listed = record.read()
        if listed is None and params["adopt_labels"] and applied:
            # No record yet (installed by a version that kept none): what carries the
            # component's labels, of the kinds this run applied, is what it owned before.
            listed = record.adopt(applied, params["adopt_labels"])
        removal = self._removal(batch, params)
        if params["prune"] and listed:
            removal.run(not_applied(listed, applied))
        remaining = merge_refs(removal.staying(), applied)
        changed = any(e["method"] == "deleted" for e in removal.results)
        if not batch.dry_run:
            if not remaining and listed is None:
                pass  # a run that owns nothing (monitoring with an external Prometheus) and had no record
            elif not record.namespace_exists:
                return {**self._report(removal, changed=changed, recorded=False),
                        "warnings": [f"inventory of {record.component} not recorded: "
                                     f"namespace {record.namespace} does not exist"]}
            else:
                changed = record.write(remaining) or changed
        return {**self._report(removal, changed=changed, recorded=True), "objects": len(remaining)}

    # -- helpers -----------------------------------------------------------------------------------
    def _removal(self, batch: Batch, params: dict[str, Any]) -> Removal:
        return Removal(batch, delete_data=params["delete_data"], timeout=params["wait_timeout"],
                       handover=params["handover_finalizers"])

    @staticmethod
    def _report(removal: Removal, *, changed: bool, recorded: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"changed": changed, "results": removal.results, "recorded": recorded}
        # The operator copies these into status.components.<component>.leftovers.
        out["leftovers"] = [
            {**{k: ref[k] for k in ("apiVersion", "kind", "namespace", "name") if ref.get(k)}, "reason": why}
            for ref, why in removal.leftovers
        ]
        if removal.leftovers:
            out["warnings"] = [f"not removed: {describe(ref)}: {why}" for ref, why in removal.leftovers]
        return out


class Record:
    """ConfigMap ``ks-installer-inventory-<component>``: the references, never the objects' data."""

    def __init__(self, batch: Batch, component: str, namespace: str, version: str) -> None:
        self.batch = batch
        self.component = component
        self.namespace = namespace
        self.version = version
        #: Known once read() ran (every state reads the record first).
        self.namespace_exists = False
        self.ref: dict[str, Any] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": inventory_name(component), "namespace": namespace},
        }

    def namespace_ref(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}

    def read(self) -> list[Ref] | None:
        """The listed references; None without a record (or without its namespace: see namespace_exists)."""
        self.namespace_exists = self.batch.get(self.namespace_ref()) is not None
        if not self.namespace_exists:
            return None
        live = self.batch.get(self.ref)
        if live is None:
            return None
        try:
            listed = json.loads((live.get("data") or {}).get(KEY) or "[]")
        except ValueError:
            raise BatchError(f"ConfigMap {self.namespace}/{inventory_name(self.component)}: {KEY} is not JSON") from None
        return [r for r in listed if isinstance(r, dict) and r.get("kind") and r.get("name")]

    def write(self, refs: list[Ref]) -> bool:
        """Replace the record with ``refs``; no refs: delete it. Whether anything changed."""
        if not refs:
            return self.batch.delete(self.ref) == "deleted"
        objects = sorted(refs, key=lambda r: (r.get("apiVersion", ""), r["kind"], r.get("namespace", ""), r["name"]))
        body = {
            **self.ref,
            "metadata": {**self.ref["metadata"], "labels": {
                "app.kubernetes.io/managed-by": "ks-installer", "app.kubernetes.io/part-of": "kubesphere",
                LABEL: self.component}},
            "data": {KEY: json.dumps(objects, indent=1, sort_keys=True), "version": self.version},
        }
        method, _ = self.batch.apply(body)
        return method != "unchanged"

    def adopt(self, applied: list[Ref] | None, labels: dict[str, str]) -> list[Ref]:
        """Objects carrying ``labels``: of the kinds and namespaces in ``applied``, or (None) anywhere.

        Objects with an owner are left out: they go with their owner (a Deployment's ReplicaSets).
        """
        selectors = [f"{k}={v}" for k, v in sorted(labels.items())]
        if applied is None:
            where = [(api_version, kind, None) for api_version, kind in self.batch.kinds()]
        else:
            namespaces = sorted({r.get("namespace") or "" for r in applied})
            kinds = sorted({(r["apiVersion"], r["kind"]) for r in applied if r["kind"] != "Namespace"})
            where = [(a, k, ns or None) for a, k in kinds for ns in namespaces]
        found: dict[tuple[str, str, str, str], Ref] = {}
        for api_version, kind, namespace in where:
            res = self.batch.served(kind, api_version)
            if res is None or (res.namespaced and applied is not None and namespace is None):
                continue
            try:
                listed = self.batch.list(api_version, kind, namespace=namespace if res.namespaced else None,
                                         selectors=selectors)
            except BatchError:
                continue  # gone since discovery (a CRD another removal deleted): nothing of it to adopt
            for obj in listed:
                if not (obj.get("metadata") or {}).get("ownerReferences"):
                    ref = ref_of(obj)
                    found[(ref["apiVersion"], ref["kind"], ref.get("namespace", ""), ref["name"])] = ref
        return list(found.values())
