#!/usr/bin/python
# Copyright: kubesphere-installer maintainers
# Apache License 2.0
# The work is done by the action plugin of the same name (plugins/action/info.py), in the
# controller; this file holds its documentation.

DOCUMENTATION = r"""
module: info

short_description: Read Kubernetes objects in the controller, optionally waiting until one is ready

description:
  - The reads of C(kubernetes.core.k8s_info) the installer's roles make (one object by name, or
    the objects of a kind matching label selectors), as an action plugin, without a module start-up.
  - With O(wait) and O(name), waits until the object is ready by the rules of
    M(kubesphere.installer.apply) (or O(wait_condition)); a Job that failed ends the wait at once.
  - Never changes anything; runs in check mode as in a real run.

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
      - With O(record) only.
    type: bool
    default: false
  api_version:
    description: API version of O(kind).
    type: str
    default: v1
    aliases: [apiVersion]
  kind:
    description: Kind to read.
    type: str
    required: true
  name:
    description: The one object to read; without it, every object of O(kind) (in O(namespace)).
    type: str
  namespace:
    description: Namespace of namespaced objects.
    type: str
  label_selectors:
    description: Selectors the listed objects match.
    type: list
    elements: str
    default: []
  record:
    description:
      - Add the objects read to the run's record of what the component owns (see
        M(kubesphere.installer.inventory)), for objects a role creates once and leaves alone
        afterwards (so a later run applies nothing to them).
    type: bool
    default: false
  wait:
    description: Wait until the object named O(name) is ready.
    type: bool
    default: false
  wait_condition:
    description: Wait for this condition (C(type), C(status), C(reason)) instead of the kind's rule.
    type: dict
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 600
  wait_sleep:
    description: Longest pause between two checks.
    type: int
    default: 2
"""

EXAMPLES = r"""
- name: Minio | Wait until the buckets exist
  kubesphere.installer.info:
    api_version: batch/v1
    kind: Job
    name: minio-make-bucket-job
    namespace: kubesphere-system
    wait: true
    wait_condition: {type: Complete, status: "True"}
"""

RETURN = r"""
api_found:
  description: Whether the cluster serves O(kind) (when not, C(resources) is empty and nothing failed).
  returned: always
  type: bool
resources:
  description: The objects read (none when the named object does not exist).
  returned: always
  type: list
  elements: dict
"""

if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    print(json.dumps({"failed": True, "msg": "kubesphere.installer.info runs as an action plugin in the controller"}))
    sys.exit(1)
