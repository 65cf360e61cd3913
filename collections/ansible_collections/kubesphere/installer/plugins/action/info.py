# Copyright: kubesphere-installer maintainers
# Apache License 2.0
"""The ``kubesphere.installer.info`` action: read objects in the controller, without a module start-up.

Documentation: ``plugins/modules/info.py``.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.kubesphere.installer.plugins.module_utils.batch import (
    APPLIED_FACT,
    COMMON_ARGS,
    Batch,
    BatchError,
    merge_refs,
    ref_of,
)

ARGUMENT_SPEC: dict[str, Any] = {
    "api_version": {"type": "str", "default": "v1", "aliases": ["apiVersion"]},
    "kind": {"type": "str", "required": True},
    "name": {"type": "str"},
    "namespace": {"type": "str"},
    "label_selectors": {"type": "list", "elements": "str", "default": []},
    "record": {"type": "bool", "default": False},
    **COMMON_ARGS,
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars or {})
        validation, _ = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        params = validation.validated_parameters
        try:
            batch = Batch.connect(params, dry_run=False)
            if batch.served(params["kind"], params["api_version"]) is None:
                # As kubernetes.core.k8s_info: a kind the cluster does not serve has no objects.
                result.update(changed=False, resources=[], api_found=False)
                return result
            if params["name"]:
                obj = {"apiVersion": params["api_version"], "kind": params["kind"], "metadata": {"name": params["name"]}}
                if params["wait"]:
                    batch.wait_ready([obj], condition=params["wait_condition"])
                live = batch.get(obj)
                resources = [live] if live is not None else []
            else:
                resources = batch.list(
                    params["api_version"], params["kind"], namespace=params["namespace"],
                    selectors=params["label_selectors"],
                )
        except BatchError as exc:
            raise AnsibleActionFail(str(exc)) from None
        result.update(changed=False, resources=resources, api_found=True)
        if params["record"]:
            # Objects a role creates once and then leaves alone belong to the component's record too.
            known = ((task_vars or {}).get("ansible_facts") or {}).get(APPLIED_FACT) or []
            refs = [{**ref_of(r), "data": True} if params["data"] else ref_of(r) for r in resources]
            result["ansible_facts"] = {APPLIED_FACT: merge_refs(known, refs)}
        return result
