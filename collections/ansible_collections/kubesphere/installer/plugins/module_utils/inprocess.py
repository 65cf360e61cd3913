# Copyright: kubesphere-installer maintainers
# Apache License 2.0
"""Run one of our kubernetes.core-style modules inside the controller, as an action.

Our modules (``kubesphere_config``, ``cc_status``) are written as kubernetes.core modules:
``execute_module(client, module)`` reads ``module.params`` and ends in ``module.exit_json``.
Started as modules they pay a module start-up per task (a new interpreter importing the
Kubernetes client); the installer's playbooks target the controller, so the action of the
same name calls ``execute_module`` here instead, with a stand-in for the module object.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException


class _Exit(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("module exit")
        self.result = result


class _Module:
    """What execute_module uses of an AnsibleModule."""

    def __init__(self, params: dict[str, Any], *, check_mode: bool, diff: bool) -> None:
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def exit_json(self, **result: Any) -> None:
        raise _Exit(result)

    def fail_json(self, **result: Any) -> None:
        raise _Exit({**result, "failed": True})


class InProcessAction(ActionBase):
    """Subclasses set ``module``: the module file, with ``argspec()`` and ``execute_module``."""

    TRANSFERS_FILES = False
    module: ModuleType

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars or {})
        validation, _ = self.validate_argument_spec(argument_spec=self.module.argspec())
        # As a module would get them: plain JSON types (no templating tags on the strings).
        params = json.loads(json.dumps(validation.validated_parameters, default=str))
        shim = _Module(params, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff))
        try:
            auth = {k: params[k] for k in AUTH_ARG_SPEC if params.get(k) is not None}
            self.module.execute_module(get_api_client(**auth), shim)
        except _Exit as done:
            result.update(done.result)
        except CoreException as exc:
            raise AnsibleActionFail(str(exc)) from None
        else:
            raise AnsibleActionFail(f"{self._task.action} ended without a result")
        if shim.warnings:
            result.setdefault("warnings", []).extend(shim.warnings)
        return result
