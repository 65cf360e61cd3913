#!/usr/bin/python
# Copyright: kubesphere-installer maintainers
# Apache License 2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubesphere_config

short_description: Merge the rendered kubesphere.yaml into the kubesphere-config ConfigMap

description:
  - Writes the platform configuration the installer renders into a key of a ConfigMap
    (by default C(kubesphere-system/kubesphere-config), key C(kubesphere.yaml)).
  - Unlike a plain apply, keys a user set by hand survive. A three-way merge against the
    configuration last applied by the installer (kept in the annotation
    C(installer.kubesphere.io/last-applied-config)) keeps hand-edited values, drops keys the
    installer no longer renders, and takes every other rendered value.
  - Never put secrets in the configuration; they belong in Secrets.
  - Supports check mode and diff mode.

version_added: 0.1.0

author:
  - kubesphere-installer maintainers

extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options

options:
  name:
    description: Name of the ConfigMap.
    type: str
    default: kubesphere-config
  namespace:
    description: Namespace of the ConfigMap.
    type: str
    default: kubesphere-system
  key:
    description: Key of the ConfigMap that holds the YAML document.
    type: str
    default: kubesphere.yaml
  config:
    description: The rendered configuration (a mapping).
    type: dict
    required: true
  labels:
    description: Labels set on the ConfigMap.
    type: dict
    default: {}

requirements:
  - "python >= 3.9"
  - "kubernetes >= 24.2.0"
  - "PyYAML >= 3.11"
"""

EXAMPLES = r"""
- name: Core | Merge kubesphere.yaml into kubesphere-config
  kubesphere.installer.kubesphere_config:
    config: "{{ lookup('ansible.builtin.template', 'kubesphere.yaml.j2') | from_yaml }}"
    labels:
      app.kubernetes.io/managed-by: ks-installer
"""

RETURN = r"""
config:
  description: The configuration now in the ConfigMap (after the merge).
  returned: success
  type: dict
  sample: {authentication: {multipleLogin: true}}
kept:
  description: Dotted paths whose hand-set values were kept over the rendered ones.
  returned: success
  type: list
  elements: str
  sample: [authentication.oauthOptions.accessTokenMaxAge]
results:
  description: >-
    The ConfigMap as one entry, like M(kubesphere.installer.apply)'s: apiVersion, kind, namespace, name,
    method (C(created), C(changed) or C(unchanged)) and, in check mode for a changed ConfigMap, fields
    (paths such as C(data["kubesphere.yaml"].authentication.multipleLogin); never values).
  returned: success
  type: list
  elements: dict
"""

import json
import traceback

try:
    import yaml
except ImportError:  # Handled by the requirement check below.
    yaml = None

from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from ansible_collections.kubesphere.installer.plugins.module_utils.batch import diff_paths
from ansible_collections.kubesphere.installer.plugins.module_utils.merge import three_way_merge

try:
    from kubernetes.dynamic.exceptions import NotFoundError
except ImportError:  # Handled by AnsibleK8SModule's requirement check.
    NotFoundError = Exception

ANNOTATION = "installer.kubesphere.io/last-applied-config"

CONFIG_ARG_SPEC = {
    "name": {"type": "str", "default": "kubesphere-config"},
    "namespace": {"type": "str", "default": "kubesphere-system"},
    "key": {"type": "str", "default": "kubesphere.yaml"},
    "config": {"type": "dict", "required": True},
    "labels": {"type": "dict", "default": {}},
}


def argspec():
    spec = dict(AUTH_ARG_SPEC)
    spec.update(CONFIG_ARG_SPEC)
    return spec


def dump(doc):
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=True)


def execute_module(client, module):
    params = module.params
    resource = client.resource("ConfigMap", "v1")
    try:
        existing = client.get(resource, name=params["name"], namespace=params["namespace"]).to_dict()
    except NotFoundError:
        existing = None
    except Exception as exc:
        raise CoreException(f"reading ConfigMap {params['namespace']}/{params['name']}: {exc}") from exc

    desired = params["config"]
    kept = []
    if existing is None:
        live_doc, merged, last = None, desired, None
    else:
        annotations = existing["metadata"].get("annotations") or {}
        raw_last = annotations.get(ANNOTATION)
        last = json.loads(raw_last) if raw_last else None
        live_doc = yaml.safe_load((existing.get("data") or {}).get(params["key"]) or "") or {}
        merged = three_way_merge(last, live_doc, desired, kept=kept)

    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": params["name"],
            "namespace": params["namespace"],
            "labels": params["labels"],
            "annotations": {ANNOTATION: json.dumps(desired, sort_keys=True, separators=(",", ":"))},
        },
        "data": {params["key"]: dump(merged)},
    }
    changed = existing is None or (
        merged != live_doc
        or last != desired
        or any((existing["metadata"].get("labels") or {}).get(k) != v for k, v in params["labels"].items())
    )
    result = {"changed": changed, "config": merged, "kept": kept}
    entry = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": params["name"],
        "namespace": params["namespace"],
        "method": "created" if existing is None else "changed" if changed else "unchanged",
    }
    if module.check_mode and existing is not None and changed:
        # Paths, never values: kubesphere.yaml holds secrets.
        fields = diff_paths(live_doc, merged, f"data[{json.dumps(params['key'])}]")
        if last != desired:
            fields.append(f"metadata.annotations[{json.dumps(ANNOTATION)}]")
        if any((existing["metadata"].get("labels") or {}).get(k) != v for k, v in params["labels"].items()):
            fields.append("metadata.labels")
        entry["fields"] = fields
    result["results"] = [entry]
    if module._diff:
        result["diff"] = {"before": dump(live_doc) if live_doc is not None else "", "after": dump(merged)}
    if changed and not module.check_mode:
        try:
            if existing is None:
                client.create(resource, body, namespace=params["namespace"])
            else:
                body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
                labels = dict(existing["metadata"].get("labels") or {})
                labels.update(params["labels"])
                body["metadata"]["labels"] = labels
                annotations = dict(existing["metadata"].get("annotations") or {})
                annotations.update(body["metadata"]["annotations"])
                body["metadata"]["annotations"] = annotations
                data = dict(existing.get("data") or {})
                data.update(body["data"])
                body["data"] = data
                client.replace(resource, body, name=params["name"], namespace=params["namespace"])
        except Exception as exc:
            raise CoreException(f"writing ConfigMap {params['namespace']}/{params['name']}: {exc}") from exc
    module.exit_json(**result)


def main():
    module = AnsibleK8SModule(module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True)
    if yaml is None:
        module.fail_json(msg="PyYAML is required", exception=traceback.format_exc())
    try:
        client = get_api_client(module=module)
        execute_module(client, module)
    except CoreException as exc:
        module.fail_from_exception(exc)


if __name__ == "__main__":
    main()
