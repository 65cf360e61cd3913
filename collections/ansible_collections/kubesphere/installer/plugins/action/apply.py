# Copyright: kubesphere-installer maintainers
# Apache License 2.0
"""The ``kubesphere.installer.apply`` action: a step's objects in one task, in the controller.

It runs where ansible-playbook runs (the installer's playbooks always target the
controller itself), so a task costs no module start-up: the Kubernetes client is imported
once by the playbook process and each task's worker inherits it.  Documentation:
``plugins/modules/apply.py``.
"""

from __future__ import annotations

import copy
import json
import os
import time
from typing import Any

import yaml
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible_collections.kubesphere.installer.plugins.module_utils.removal import rank
from ansible_collections.kubesphere.installer.plugins.module_utils.batch import (
    APPLIED_FACT,
    CHECKED_FACT,
    COMMON_ARGS,
    Batch,
    BatchError,
    documents,
    merge_refs,
)

try:  # ansible-core 2.19 and later: template text must be marked trusted to be rendered
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - older ansible-core
    trust_as_template = None

ARGUMENT_SPEC: dict[str, Any] = {
    "state": {"type": "str", "default": "present", "choices": ["present", "patched", "absent"]},
    "src": {"type": "list", "elements": "path"},
    "template": {"type": "list", "elements": "str"},
    "definition": {"type": "raw"},
    "api_version": {"type": "str", "default": "v1", "aliases": ["apiVersion"]},
    "kind": {"type": "str"},
    "name": {"type": "list", "elements": "str"},
    "namespace": {"type": "str"},
    "label_selectors": {"type": "list", "elements": "str", "default": []},
    "delete_options": {"type": "dict", "default": {}},
    "field_manager": {"type": "str", "default": "ks-installer"},
    "force_conflicts": {"type": "bool", "default": True},
    **COMMON_ARGS,
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        params = validation.validated_parameters
        check_mode = bool(self._task.check_mode)
        if params["state"] == "present" and (self._task.loop or self._task.loop_with):
            # Each item would see the facts from before the loop: the inventory would keep one item's objects.
            raise AnsibleActionFail(
                "kubesphere.installer.apply with state present does not run in a loop: give the objects "
                "as one list (template, src, definition), or one task per set of variables"
            )
        try:
            objects = self._objects(params, task_vars)
            batch = Batch.connect(
                params, dry_run=check_mode, field_manager=params["field_manager"],
                force_conflicts=params["force_conflicts"],
            )
            if params["state"] == "absent" and params["label_selectors"] and params["kind"] and not objects:
                objects = batch.list(
                    params["api_version"], params["kind"], namespace=params["namespace"],
                    selectors=params["label_selectors"],
                )
            results = self._run(batch, params, objects, check_mode, task_vars)
        except BatchError as exc:
            raise AnsibleActionFail(str(exc)) from None
        result["changed"] = any(r["method"] not in ("unchanged", "absent") for r in results)
        result["results"] = [{k: v for k, v in r.items() if k != "object"} for r in results]
        if check_mode:
            # What this check run would do so far, for ``ks-installer plan`` (see CHECKED_FACT).
            checked = (task_vars.get("ansible_facts") or {}).get(CHECKED_FACT) or []
            result["ansible_facts"] = {CHECKED_FACT: checked + result["results"]}
        if params["state"] == "present":
            # What this run applied so far, for the component's inventory (see the inventory action);
            # in check mode too, so a check run's pruning shows what a real one would remove.
            known = (task_vars.get("ansible_facts") or {}).get(APPLIED_FACT) or []
            applied = [{**r, "data": True} if params["data"] else r for r in result["results"]]
            result.setdefault("ansible_facts", {})[APPLIED_FACT] = merge_refs(known, applied)
        if len(results) == 1:  # as kubernetes.core.k8s registers one object
            result["method"] = results[0]["method"]
            result["result"] = results[0].get("object") or {}
        return result

    # -- inputs ------------------------------------------------------------------------------------
    def _objects(self, params: dict[str, Any], task_vars: dict[str, Any]) -> list[dict[str, Any]]:
        objs: list[dict[str, Any]] = []
        for src in params["src"] or []:
            try:
                path = self._find_needle("files", src)
            except AnsibleError as exc:
                raise BatchError(f"src {src}: {exc.message}") from None
            with open(path, encoding="utf-8") as fh:
                objs.extend(self._parse(fh.read(), f"src {src}"))
        for name in params["template"] or []:
            objs.extend(self._parse(self._render(name, task_vars), f"template {name}"))
        definition = params["definition"]
        if params["kind"] and params["name"]:
            # One object per name; a definition is then the body each of them gets.
            if definition is not None and not isinstance(definition, dict):
                raise BatchError("with kind and name, definition must be one object (the body of each)")
            for name in params["name"]:
                meta = {"name": name, **({"namespace": params["namespace"]} if params["namespace"] else {})}
                body = copy.deepcopy(definition or {})
                body.update(apiVersion=params["api_version"], kind=params["kind"])
                body["metadata"] = {**(body.get("metadata") or {}), **meta}
                objs.append(body)
        elif isinstance(definition, str):
            objs.extend(self._parse(definition, "definition"))
        elif isinstance(definition, (dict, list)):
            objs.extend(documents([copy.deepcopy(definition)]))
        elif definition is not None:
            raise BatchError(f"definition must be an object, a list or YAML text, not {type(definition).__name__}")
        if not objs and not (params["state"] == "absent" and params["label_selectors"]):
            raise BatchError("nothing to do: give src, template, definition or kind and name")
        return objs

    @staticmethod
    def _parse(text: str, what: str) -> list[dict[str, Any]]:
        try:
            return documents(yaml.safe_load_all(to_text(text)))
        except yaml.YAMLError as exc:
            raise BatchError(f"{what} is not valid YAML: {exc}") from None
        except BatchError as exc:
            raise BatchError(f"{what}: {exc}") from None

    def _render(self, name: str, task_vars: dict[str, Any]) -> str:
        try:
            path = self._find_needle("templates", name)
        except AnsibleError as exc:
            raise BatchError(f"template {name}: {exc.message}") from None
        with open(path, encoding="utf-8") as fh:
            source = fh.read()
        templar = self._templar.copy_with_new_env(available_variables=task_vars)
        try:
            if trust_as_template is not None:
                rendered = templar.template(
                    trust_as_template(source), preserve_trailing_newlines=True, escape_backslashes=False
                )
            else:  # pragma: no cover
                rendered = templar.do_template(source, preserve_trailing_newlines=True, escape_backslashes=False)
        except AnsibleError as exc:
            raise BatchError(f"template {name}: {exc.message}") from None
        return to_text(rendered)

    # -- the work ----------------------------------------------------------------------------------
    def _run(
        self, batch: Batch, params: dict[str, Any], objects: list[dict[str, Any]], check_mode: bool,
        task_vars: dict[str, Any],
    ) -> list[dict[str, Any]]:
        started = time.monotonic()
        results: list[dict[str, Any]] = []
        state = params["state"]
        if state == "absent":
            # Dependents first, by the ranks the inventory's removal uses (stable: else as given).
            ordered = sorted(objects, key=rank)
            propagation = (params["delete_options"] or {}).get("propagationPolicy")
            deleted = []
            for obj in ordered:
                method = batch.delete(obj, propagation=propagation)
                results.append(_summary(obj, method))
                if method == "deleted":
                    deleted.append(obj)
            if params["wait"] and deleted and not check_mode:
                batch.wait_gone(deleted)
            return results
        if state == "present":
            batch.prefetch(objects)
        for obj in objects:
            method, live, fields = (batch.patch_fields if state == "patched" else batch.apply_fields)(obj)
            entry = _summary(live, method)
            if check_mode and fields:
                entry["fields"] = fields  # paths only: a Secret's values never leave the action
            results.append({**entry, "object": live})
        if params["wait"] and not check_mode:
            batch.wait_ready(objects, condition=params["wait_condition"])
        if not check_mode:
            self._record(params, objects, seconds=time.monotonic() - started, task_vars=task_vars)
        return results

    def _record(self, params: dict[str, Any], objects: list[dict[str, Any]], *, seconds: float,
                task_vars: dict[str, Any]) -> None:
        """With $KS_APPLY_RECORD set, append this batch to that file (JSON lines; Secret values masked).

        ``make bench-installer`` replays the record with plain server-side applies to measure
        the floor an install is compared with, and sums ``seconds`` (the batch's API calls and
        wait) per ``component`` to split each run into apply-and-wait time and the rest.
        """
        path = os.environ.get("KS_APPLY_RECORD")
        if not path:
            return
        masked = [_masked(o) for o in objects]
        line = {"task": self._task.get_name(), "component": task_vars.get("ks_component"),
                "seconds": round(seconds, 3), "state": params["state"], "wait": params["wait"],
                "wait_condition": params["wait_condition"], "field_manager": params["field_manager"],
                "objects": masked}
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, default=str) + "\n")


def _masked(obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("kind") != "Secret":
        return obj
    out = copy.deepcopy(obj)
    for field in ("data", "stringData"):
        if isinstance(out.get(field), dict):
            out[field] = {k: "x" * len(str(v)) if field == "stringData" else "eA==" for k, v in out[field].items()}
    return out


def _summary(obj: dict[str, Any], method: str) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    out = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name"), "method": method}
    if meta.get("namespace"):
        out["namespace"] = meta["namespace"]
    if meta.get("uid"):
        out["uid"] = meta["uid"]
    return out

