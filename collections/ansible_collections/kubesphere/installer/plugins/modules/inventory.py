#!/usr/bin/python
# Copyright: kubesphere-installer maintainers
# Apache License 2.0
# The work is done by the action plugin of the same name (plugins/action/inventory.py), in
# the controller; this file holds its documentation.

DOCUMENTATION = r"""
module: inventory

short_description: Record what a component applied; remove what its record lists (uninstall, pruning)

description:
  - Every M(kubesphere.installer.apply) task with O(state=present) adds the objects it applied
    (API version, kind, namespace, name, uid, and C(data) when the task says the object holds
    the component's data; never the objects' contents) to the host fact C(ks_applied_objects).
  - O(state=present), at the end of a component's successful run, writes that list into
    ConfigMap C(ks-installer-inventory-<component>) (key C(objects.json), labels
    C(app.kubernetes.io/managed-by=ks-installer) and C(installer.kubesphere.io/inventory=<component>)),
    replacing the previous record, and starts the fact afresh. A run that fails before it keeps
    the previous record. With O(prune), what the previous record lists and the run did not
    apply is removed first (see below) and what stays is carried into the new record. With no
    previous record and O(adopt_labels), the objects carrying those labels, of the kinds and
    namespaces the run applied, are taken as the previous record.
  - O(state=absent) removes what the record lists (but O(skip_kinds)), then rewrites the record
    with what stayed, or deletes it when nothing did.
  - Removal goes dependents first (webhooks, custom resources, workloads with their pods, the
    rest, bindings, roles and ServiceAccounts, CRDs), each rank waited for at most
    O(wait_timeout) seconds. PVCs and objects recorded with C(data) stay unless O(delete_data);
    a CRD stays while objects of it exist unless O(delete_data); namespaces always stay. An
    object re-created under the same name since it was recorded (another uid) is left alone.
    What is still there after the wait, or whose deletion was refused, is returned in
    C(leftovers) (and as a warning) and stays in the record.
  - When O(namespace) does not exist the record is not written, with a warning.
  - In check mode nothing is written or deleted; the deletions are server-side dry runs, and
    C(results) says what would go.

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
  prune:
    description: With O(state=present), remove what the previous record lists and this run did not apply.
    type: bool
    default: true
  delete_data:
    description: Remove PVCs, objects recorded as data, and CRDs with objects of them too.
    type: bool
    default: false
  skip_kinds:
    description: With O(state=absent), kinds to leave (in the record) for a later call.
    type: list
    elements: str
    default: []
  adopt_labels:
    description: Labels that mark the component's objects, for a component without a record.
    type: dict
    default: {}
  wait_timeout:
    description: Seconds to wait for each rank of deletions before reporting what is left.
    type: int
    default: 120
  handover_finalizers:
    description:
      - Finalizers a later task of the same uninstall releases (core's, of the controller manager
        it removes). An object whose deletion waits for these only is waited for at most 10
        seconds, time for a running controller to finish, then handed over to that later task -
        it stays in the record and is not reported in C(leftovers).
    type: list
    elements: str
    default: []
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
  returned: with O(state=present)
  type: int
results:
  description: Per object considered for removal, C(method) C(deleted), C(absent), C(kept) or C(leftover), with C(reason).
  returned: always
  type: list
  elements: dict
leftovers:
  description: What could not be removed (apiVersion, kind, namespace, name, reason).
  returned: always
  type: list
  elements: dict
"""

if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps({"failed": True, "msg": "kubesphere.installer.inventory runs as an action plugin in the controller"}))
    sys.exit(1)
