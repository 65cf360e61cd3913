#!/usr/bin/python
# Copyright: kubesphere-installer maintainers
# Apache License 2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: cc_status

short_description: Record a component's state in the ClusterConfiguration status

description:
  - Writes the ks-installer-compatible status of one component into the status
    subresource of a ClusterConfiguration, C(status.<component>.status) and
    C(status.<component>.enabledTime) (and C(status.core.version) for core), so that
    users' scripts read the same status after a plain C(ansible-playbook) run as after
    the operator's.
  - The operator writes status itself; playbooks call this module only when they run
    without it.
  - When the ClusterConfiguration does not exist the module changes nothing and says so.
  - Supports check mode.

version_added: 0.1.0

author:
  - kubesphere-installer maintainers

extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options

options:
  name:
    description: Name of the ClusterConfiguration.
    type: str
    default: ks-installer
  namespace:
    description: Namespace of the ClusterConfiguration.
    type: str
    default: kubesphere-system
  component:
    description: Status key of the component (C(core), C(redis), C(devops), ...).
    type: str
    required: true
  state:
    description:
      - C(enabled) records the component as installed (keeping an earlier C(enabledTime)),
        C(failed) as failed, C(absent) removes its key.
    type: str
    choices: [enabled, failed, absent]
    default: enabled
  version:
    description: Platform version, written as C(status.core.version) when I(component=core).
    type: str

requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
"""

EXAMPLES = r"""
- name: Redis | Record the component as enabled
  kubesphere.installer.cc_status:
    component: redis
    state: enabled

- name: Devops | Remove the component from status after uninstall
  kubesphere.installer.cc_status:
    component: devops
    state: absent
"""

RETURN = r"""
status:
  description: The component's status after the call (empty when removed).
  returned: success
  type: dict
  sample: {status: enabled, enabledTime: 2026-11-22T04:00:00UTC}
found:
  description: Whether the ClusterConfiguration exists.
  returned: always
  type: bool
"""

import datetime

from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

try:
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
except ImportError:  # Handled by AnsibleK8SModule's requirement check.
    NotFoundError = ResourceNotFoundError = Exception

STATUS_ARG_SPEC = {
    "name": {"type": "str", "default": "ks-installer"},
    "namespace": {"type": "str", "default": "kubesphere-system"},
    "component": {"type": "str", "required": True},
    "state": {"type": "str", "default": "enabled", "choices": ["enabled", "failed", "absent"]},
    "version": {"type": "str"},
}


def argspec():
    spec = dict(AUTH_ARG_SPEC)
    spec.update(STATUS_ARG_SPEC)
    return spec


def ks_time():
    """ks-installer's enabledTime format (date +%Y-%m-%dT%H:%M:%S%Z)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SUTC")


def desired_entry(current, state, component, version):
    if state == "absent":
        return None
    entry = dict(current or {})
    entry["status"] = state
    if state == "enabled":
        entry.setdefault("enabledTime", ks_time())
        if component == "core" and version:
            entry["version"] = version
    return entry


def execute_module(client, module):
    p = module.params
    try:
        resource = client.resource("ClusterConfiguration", "installer.kubesphere.io/v1alpha1")
        cc = client.get(resource, name=p["name"], namespace=p["namespace"]).to_dict()
    except (NotFoundError, ResourceNotFoundError):
        module.warn(f"ClusterConfiguration {p['namespace']}/{p['name']} not found; status not recorded")
        module.exit_json(changed=False, found=False, status={})
    except Exception as exc:
        raise CoreException(f"reading ClusterConfiguration: {exc}") from exc
    current = (cc.get("status") or {}).get(p["component"])
    wanted = desired_entry(current, p["state"], p["component"], p["version"])
    changed = wanted != current
    if changed and not module.check_mode:
        try:
            client.client.request(
                "PATCH",
                f"/apis/installer.kubesphere.io/v1alpha1/namespaces/{p['namespace']}"
                f"/clusterconfigurations/{p['name']}/status",
                body={"status": {p["component"]: wanted}},
                content_type="application/merge-patch+json",
            )
        except Exception as exc:
            raise CoreException(f"patching ClusterConfiguration status: {exc}") from exc
    module.exit_json(changed=changed, found=True, status=wanted or {})


def main():
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True)
    try:
        client = get_api_client(module=module)
        execute_module(client, module)
    except CoreException as exc:
        module.fail_from_exception(exc)


if __name__ == "__main__":
    main()
