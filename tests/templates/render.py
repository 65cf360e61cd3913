"""Renders the roles' templates as the roles do, without a cluster: Ansible's own templating
engine, each role's defaults over the common role's, the spec as the operator passes it
(every string ``!unsafe``), and the variables the role's tasks set before each template.

The results are parsed documents, with the configuration files the roles embed in
ConfigMaps and Secrets (``kubesphere.yaml``, ``prometheus.yml``, ...) parsed as well, so
a comparison sees into them.
"""

from __future__ import annotations

import base64
import copy
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

from installer.runs import dump_unsafe

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"

#: A task's `lookup('template', ...)` of an embedded configuration file.
_LOOKUP = "{{{{ lookup('ansible.builtin.template', '{}') }}}}"
_FILE = "{{{{ lookup('ansible.builtin.file', '{}') }}}}"

#: Per role: (template, the variables its task sets), in the order the tasks render them.
#: Values are Ansible expressions, as in the task files.
RENDERS: dict[str, list[tuple[str, dict[str, str]]]] = {
    "ks_core": [
        ("kubesphere.yaml.j2", {}),
        ("rbac.yaml.j2", {}),
        ("workloads.yaml.j2", {"ks_core_config_checksum": "0123456789abcdef"}),
        ("admin-user.yaml.j2", {"ks_core_initial_admin_password": "{{ ks_core_admin_password }}"}),
    ],
    "redis": [
        ("pvc.yaml.j2", {}),
        ("deployment.yaml.j2", {}),
        ("service.yaml.j2", {}),
        ("service-ha.yaml.j2", {}),
        ("statefulset.yaml.j2", {}),
    ],
    "openldap": [("service.yaml.j2", {}), ("statefulset.yaml.j2", {})],
    "minio": [
        ("pvc.yaml.j2", {}),
        ("deployment.yaml.j2", {}),
        ("service.yaml.j2", {}),
        ("bucket-job.yaml.j2", {}),
    ],
    "jenkins": [
        (
            "casc-configmap.yaml.j2",
            {"jenkins_casc": _LOOKUP.format("casc.yaml.j2")},
        ),
        ("rbac.yaml.j2", {}),
        ("pvc.yaml.j2", {"jenkins_pvc_size": "{{ jenkins_volume_size }}"}),
        (
            "deployment.yaml.j2",
            {"jenkins_casc": _LOOKUP.format("casc.yaml.j2")},
        ),
        ("service.yaml.j2", {}),
    ],
    "devops": [
        ("rbac.yaml.j2", {}),
        (
            "configmap.yaml.j2",
            {"devops_config": _LOOKUP.format("kubesphere.yaml.j2")},
        ),
        *[
            (
                "deployment.yaml.j2",
                {
                    "devops_config": _LOOKUP.format("kubesphere.yaml.j2"),
                    "devops_app": app,
                    "devops_image": app.replace("-", "_"),
                    "devops_replicas": f"{{{{ {app.replace('-', '_')}_replicas }}}}",
                },
            )
            for app in ("devops-apiserver", "devops-controller")
        ],
        ("apiserver-service.yaml.j2", {}),
    ],
    "monitoring": [
        ("serviceaccounts.yaml.j2", {}),
        ("clusterroles.yaml.j2", {}),
        ("clusterrolebindings.yaml.j2", {}),
        ("prometheus-operator-deployment.yaml.j2", {}),
        ("node-exporter-service.yaml.j2", {}),
        ("node-exporter-daemonset.yaml.j2", {}),
        ("kube-state-metrics-service.yaml.j2", {}),
        ("kube-state-metrics-deployment.yaml.j2", {}),
        *[
            (
                template,
                {
                    "monitoring_prometheus_config": _LOOKUP.format("prometheus.yaml.j2"),
                    "monitoring_prometheus_rules": _FILE.format("recording-rules.yaml"),
                },
            )
            for template in (
                "prometheus-configmap.yaml.j2",
                "prometheus-services.yaml.j2",
                "prometheus-statefulset.yaml.j2",
            )
        ],
        *[
            (
                template,
                {"monitoring_alertmanager_config": _LOOKUP.format("alertmanager.yaml.j2")},
            )
            for template in (
                "alertmanager-secret.yaml.j2",
                "alertmanager-services.yaml.j2",
                "alertmanager-statefulset.yaml.j2",
            )
        ],
    ],
}


@cache
def _setup() -> DataLoader:
    # Ansible resolves `kubesphere.installer.*` filters through its own collection loader,
    # which must own the `ansible_collections` package (pytest's pythonpath imported it as a
    # plain namespace package for the unit tests of the plugins: those modules stay usable).
    for name in [
        m for m in sys.modules if m == "ansible_collections" or m.startswith("ansible_collections.")
    ]:
        del sys.modules[name]
    _AnsibleCollectionFinder(paths=[str(REPO / "collections")])._install()
    return DataLoader()


@cache
def _defaults(role: str) -> dict[str, Any]:
    loader = _setup()
    merged: dict[str, Any] = {}
    for name in ("common", role):
        merged.update(
            loader.load_from_file(str(ROLES / name / "defaults" / "main.yml"), trusted_as_template=True)
        )
    vars_file = ROLES / role / "vars" / "main.yml"
    if vars_file.is_file():
        merged.update(loader.load_from_file(str(vars_file), trusted_as_template=True))
    return merged


def render_text(role: str, template: str, spec: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """The text ``lookup('template', template)`` gives in ``role`` for ``spec``."""
    loader = _setup()
    variables = dict(_defaults(role))
    variables.update(loader.load(dump_unsafe({"ks_spec": spec})))
    variables.update({k: trust_as_template(v) if isinstance(v, str) else v for k, v in (extra or {}).items()})
    role_path = ROLES / role
    variables.update({"role_path": str(role_path), "ansible_search_path": [str(role_path)]})
    templar = Templar(loader=loader, variables=variables).copy_with_new_env(
        searchpath=[str(role_path / "templates")]
    )
    text = (role_path / "templates" / template).read_text()
    return str(templar.template(trust_as_template(text)))


def _embedded(doc: Any) -> Any:
    """Configuration files in ConfigMap/Secret data, parsed (``{"<file>": {"parsed": ...}}``)."""
    if not isinstance(doc, dict) or doc.get("kind") not in ("ConfigMap", "Secret"):
        return doc
    doc = copy.deepcopy(doc)
    for key, value in (doc.get("data") or {}).items():
        if key.endswith((".yaml", ".yml")) and isinstance(value, str):
            text = base64.b64decode(value).decode() if doc["kind"] == "Secret" else value
            doc["data"][key] = {"parsed": yaml.safe_load(text)}
    return doc


def render_role(role: str, spec: dict[str, Any]) -> dict[str, list[Any]]:
    """``{"<template>#<n>": [document, ...]}`` for every template ``role`` applies."""
    rendered: dict[str, list[Any]] = {}
    for n, (template, extra) in enumerate(RENDERS[role]):
        text = render_text(role, template, spec, extra)
        rendered[f"{template}#{n}"] = [_embedded(d) for d in yaml.safe_load_all(text) if d is not None]
    return rendered


def leaves(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, scalar) for every scalar under ``node``; empty collections are leaves too."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, (*path, str(key)))
    elif isinstance(node, list) and node:
        for i, value in enumerate(node):
            yield from leaves(value, (*path, f"[{i}]"))
    else:
        yield path, node
