#!/usr/bin/python
# Copyright: kubesphere-installer maintainers
# Apache License 2.0
# The work is done by the action plugin of the same name (plugins/action/apply.py), in the
# controller; this file holds its documentation.

DOCUMENTATION = r"""
module: apply

short_description: Apply, patch or delete a batch of Kubernetes objects in one task, then wait for all

description:
  - Takes every object of a step (files, rendered templates, definitions; multi-document YAML
    and C(List) kinds are opened) and makes one server-side apply per object, in order, with
    field manager O(field_manager); with O(wait) it then waits for the whole batch at once,
    by the same readiness rules as C(kubernetes.core.k8s) (Deployments, StatefulSets,
    DaemonSets and Pods rolled out, CRDs Established, Jobs Complete; other kinds once they
    exist), or by O(wait_condition).
  - Objects of a CustomResourceDefinition applied earlier in the same batch wait until it
    is served.
  - Runs in the controller as an action plugin, so a task costs no module start-up, which is
    what makes a role of many objects fast. The installer's playbooks target the controller
    (C(localhost)); the module cannot run on another host.
  - O(state=patched) sends a JSON merge patch of the given fields of existing objects;
    O(state=absent) deletes the objects (or those of O(kind) matching O(label_selectors))
    dependents first (webhooks, custom resources, workloads, the rest, bindings, roles, CRDs and
    namespaces last; else in the order given), and with O(wait) waits until all are gone.
  - In check mode every write is a server-side dry run; C(changed) says what a real run
    would change.
  - Accepts kubernetes.core's authentication options; C(module_defaults) for
    C(group/kubesphere.installer.k8s) apply to it (and to every kubernetes.core module).

version_added: 0.2.0

author:
  - kubesphere-installer maintainers

extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options

options:
  data:
    description:
      - The objects hold (or unlock) the component's data, such as the Secret a volume was
        initialised with. The component's record marks them, and a removal of the record's
        objects (M(kubesphere.installer.inventory)) keeps them unless its C(delete_data).
    type: bool
    default: false
  state:
    description: C(present) (server-side apply), C(patched) (merge patch) or C(absent).
    type: str
    default: present
    choices: [present, patched, absent]
  src:
    description: YAML files (searched in the role's C(files/)), taken as they are.
    type: list
    elements: path
  template:
    description: Templates (searched in the role's C(templates/)), rendered with the task's variables.
    type: list
    elements: str
  definition:
    description: Objects as data, a list of them, or YAML text.
    type: raw
  api_version:
    description: API version of O(kind).
    type: str
    default: v1
    aliases: [apiVersion]
  kind:
    description: Kind of the object named by O(name), or listed by O(label_selectors).
    type: str
  name:
    description:
      - Names of objects of O(kind) (in O(namespace)). Each object is O(definition) (when given,
        one object, such as the fields to patch) with that kind and name.
    type: list
    elements: str
  namespace:
    description: Namespace of namespaced objects that do not name one.
    type: str
  label_selectors:
    description: With O(state=absent) and O(kind), delete the objects these selectors match.
    type: list
    elements: str
    default: []
  wait:
    description: Wait until every object of the batch is ready (or gone, for O(state=absent)).
    type: bool
    default: false
  wait_condition:
    description: Wait for this condition (C(type), C(status), C(reason)) instead of the kind's rule.
    type: dict
  wait_timeout:
    description: Seconds to wait for the whole batch.
    type: int
    default: 600
  wait_sleep:
    description:
      - Longest pause between two checks. A wait for readiness watches an object that is not
        ready yet and checks again as soon as it changes (every 0.2 s while none can be
        watched), so it ends when the last object is ready; a wait for deletion polls, from
        0.2 s up to this.
    type: int
    default: 2
  delete_options:
    description: C(propagationPolicy) for deletions (C(Foreground), C(Background), C(Orphan)).
    type: dict
    default: {}
  field_manager:
    description: Field manager of the server-side applies.
    type: str
    default: ks-installer
  force_conflicts:
    description: Take over fields another manager set (as C(kubectl apply --server-side --force-conflicts)).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Monitoring | Apply the Prometheus objects and wait for the StatefulSet
  kubesphere.installer.apply:
    template:
      - prometheus-configmap.yaml.j2
      - prometheus-services.yaml.j2
      - prometheus-statefulset.yaml.j2
    wait: true

- name: Core | Apply the CRDs
  kubesphere.installer.apply:
    src: "{{ query('ansible.builtin.fileglob', role_path ~ '/files/crds/*.yaml') | sort }}"
    wait: true

- name: Redis | Delete the workloads and wait until they are gone
  kubesphere.installer.apply:
    state: absent
    definition:
      - {apiVersion: apps/v1, kind: Deployment, metadata: {name: redis, namespace: kubesphere-system}}
      - {apiVersion: v1, kind: Service, metadata: {name: redis, namespace: kubesphere-system}}
    delete_options: {propagationPolicy: Foreground}
    wait: true
"""

RETURN = r"""
results:
  description: One entry per object, in order.
  returned: always
  type: list
  elements: dict
  contains:
    apiVersion: {description: API version, type: str}
    kind: {description: Kind, type: str}
    namespace: {description: Namespace (namespaced objects), type: str}
    name: {description: Name, type: str}
    uid: {description: UID as the server answered, type: str}
    method:
      description: C(created), C(changed), C(unchanged), C(deleted) or C(absent).
      type: str
    fields:
      description: >-
        In check mode, for a C(changed) object: the field paths the server-side dry run changes
        (C(spec.replicas), C(data.password)); the server's own metadata and C(status) are left out.
        Paths only, never values.
      type: list
      elements: str
      returned: in check mode, for changed objects
method:
  description: The one object's method, when the batch holds one object.
  returned: when the batch holds exactly one object
  type: str
result:
  description: The one object as the server answered, when the batch holds one object.
  returned: when the batch holds exactly one object and O(state) is not C(absent)
  type: dict
"""

if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps({"failed": True, "msg": "kubesphere.installer.apply runs as an action plugin in the controller"}))
    sys.exit(1)
