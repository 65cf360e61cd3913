# Copyright: kubesphere-installer maintainers
# Apache License 2.0
"""The ``kubesphere.installer.inventory`` action: record what a component's run applied.

Documentation: ``plugins/modules/inventory.py``.
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
)

ARGUMENT_SPEC: dict[str, Any] = {
    "component": {"type": "str", "required": True},
    "namespace": {"type": "str", "required": True},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "version": {"type": "str", "default": ""},
    **AUTH_ARG_SPEC,
}
LABEL = "installer.kubesphere.io/inventory"
KEY = "objects.json"


def inventory_name(component: str) -> str:
    return f"ks-installer-inventory-{component}"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        validation, _ = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        params = validation.validated_parameters
        component, namespace = params["component"], params["namespace"]
        ref = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": inventory_name(component), "namespace": namespace},
        }
        try:
            batch = Batch.connect(params, dry_run=bool(self._task.check_mode))
            applied = (task_vars.get("ansible_facts") or {}).get(APPLIED_FACT) or []
            if params["state"] == "absent" or not applied:
                # Uninstalled, or a run that owns nothing (monitoring with an external Prometheus).
                result["changed"] = batch.delete(ref) == "deleted"
                result["ansible_facts"] = {APPLIED_FACT: []}
                return result
            if batch.get({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}) is None:
                result.update(changed=False, skipped_reason=f"namespace {namespace} does not exist")
                result.setdefault("warnings", []).append(
                    f"inventory of {component} not recorded: namespace {namespace} does not exist"
                )
                return result
            objects = sorted(
                applied, key=lambda r: (r.get("apiVersion", ""), r["kind"], r.get("namespace", ""), r["name"])
            )
            body = {
                **ref,
                "metadata": {
                    **ref["metadata"],
                    "labels": {
                        "app.kubernetes.io/managed-by": "ks-installer",
                        "app.kubernetes.io/part-of": "kubesphere",
                        LABEL: component,
                    },
                },
                "data": {KEY: json.dumps(objects, indent=1, sort_keys=True), "version": params["version"]},
            }
            method, _ = batch.apply(body)
        except BatchError as exc:
            raise AnsibleActionFail(str(exc)) from None
        result.update(changed=method != "unchanged", method=method, objects=len(objects))
        # The next component of the same play starts its own record.
        result["ansible_facts"] = {APPLIED_FACT: []}
        return result
