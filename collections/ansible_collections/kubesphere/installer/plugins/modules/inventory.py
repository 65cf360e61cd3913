#!/usr/bin/python
# Copyright: kubesphere-installer maintainers
# Apache License 2.0
# The work is done by the action plugin of the same name (plugins/action/inventory.py), in
# the controller; this file holds its documentation.

DOCUMENTATION = r"""
module: inventory

short_description: Record the objects a component's run applied, after the run succeeded

description:
  - Every M(kubesphere.installer.apply) task with O(state=present) adds the objects it applied
    (API version, kind, namespace, name, uid; never their data) to the host fact
    C(ks_applied_objects). At the end of a component's successful run this action writes that
    list into ConfigMap C(ks-installer-inventory-<component>) (key C(objects.json), labels
    C(app.kubernetes.io/managed-by=ks-installer) and C(installer.kubesphere.io/inventory=<component>)),
    replacing the previous record, and starts the fact afresh. A run that fails before it
    keeps the previous record.
  - O(state=absent) deletes the record (after the component's uninstall), and so does a run
    that applied nothing (a component that owns nothing, such as monitoring with an external
    Prometheus).
  - When O(namespace) does not exist the record is not written, with a warning.
  - The playbooks skip it in check mode (a check run applies nothing); run in check mode it is a dry run.

version_added: 0.2.0

author:
  - kubesphere-installer maintainers

extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options

options:
  component:
    description: The component the record is for.
    type: str
    required: true
  namespace:
    description: Namespace of the record (the ClusterConfiguration's).
    type: str
    required: true
  state:
    description: C(present) writes the record, C(absent) deletes it.
    type: str
    default: present
    choices: [present, absent]
  version:
    description: The installer version that wrote the record.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: KubeSphere | Record what redis applied
  kubesphere.installer.inventory:
    component: redis
    namespace: kubesphere-system
"""

RETURN = r"""
objects:
  description: How many objects the record lists.
  returned: when the record was written
  type: int
method:
  description: C(created), C(changed) or C(unchanged).
  returned: when the record was written
  type: str
"""

if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(
        json.dumps(
            {
                "failed": True,
                "msg": "kubesphere.installer.inventory runs as an action plugin in the controller",
            }
        )
    )
    sys.exit(1)
