"""The core role's role templates and built-in roles hold together (no cluster needed).

Every name a built-in role lists in ``iam.kubesphere.io/aggregation-roles`` must be a role template of
the same scope, because the console's permissions are the ``role-template-rules`` of exactly those
templates; and every template says which console module and action it stands for.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

FILES = Path(__file__).resolve().parents[2] / "roles" / "ks_core" / "files"
AGGREGATION = "iam.kubesphere.io/aggregation-roles"
RULES = "iam.kubesphere.io/role-template-rules"


def documents() -> list[dict[str, Any]]:
    found = []
    for folder in ("iam", "iam-kept"):
        for path in sorted((FILES / folder).glob("*.yaml")):
            found += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return found


def scoped_roles() -> dict[str, dict[str, dict[str, Any]]]:
    """Roles by scope (global, cluster, workspace, namespace, devops), then by name."""
    scopes: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for doc in documents():
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "GlobalRole":
            scopes["global"][name] = doc
        elif kind == "ClusterRole":
            scopes["cluster"][name] = doc
        elif kind == "WorkspaceRole":
            scopes["workspace"][name] = doc
        elif kind == "RoleBase":
            role = doc["role"]
            if role["kind"] == "WorkspaceRole":
                scopes["workspace"][role["metadata"]["name"]] = role
            for label in doc["metadata"].get("labels") or {}:
                scopes[label.removeprefix("scope.kubesphere.io/")][role["metadata"]["name"]] = role
    return scopes


def notes(role: dict[str, Any]) -> dict[str, str]:
    return dict(role["metadata"].get("annotations") or {})


@pytest.mark.parametrize("scope", ["global", "cluster", "workspace", "namespace", "devops"])
def test_every_aggregated_name_is_a_template_of_the_scope(scope: str) -> None:
    scopes = scoped_roles()
    roles = scopes[scope]
    # project-admin|operator|viewer serve both namespaces and DevOps projects: they list the templates
    # of both, and each namespace finds those of its own scope (the others are skipped, as in KubeSphere).
    pool = {**scopes["namespace"], **scopes["devops"]} if scope in ("namespace", "devops") else roles
    builtin = {n: r for n, r in roles.items() if AGGREGATION in notes(r)}
    assert builtin, f"no built-in role of scope {scope} aggregates templates"
    for name, role in builtin.items():
        listed = json.loads(notes(role)[AGGREGATION])
        missing = [t for t in listed if t not in pool or RULES not in notes(pool[t])]
        assert not missing, (scope, name, missing)
        assert notes(role).get("kubesphere.io/creator") in ("admin", "system"), name


@pytest.mark.parametrize("scope", ["global", "cluster", "workspace", "namespace", "devops"])
def test_templates_name_a_module_and_an_action(scope: str) -> None:
    templates = {n: r for n, r in scoped_roles()[scope].items() if n.startswith("role-template-")}
    assert templates
    for name, role in templates.items():
        rules = json.loads(notes(role)[RULES])
        assert rules and all(v in ("view", "manage", "create") for v in rules.values()), name
        if name != "role-template-view-basic":  # the hidden base every role gets
            assert notes(role).get("iam.kubesphere.io/module") and notes(role).get("kubesphere.io/alias-name")
        for dep in json.loads(notes(role).get("iam.kubesphere.io/dependencies", "[]")):
            assert dep in templates, (name, dep)


def test_builtin_roles_at_each_scope() -> None:
    roles = scoped_roles()
    assert {"platform-admin", "platform-regular", "platform-self-provisioner"} <= set(roles["global"])
    assert {"cluster-admin", "cluster-viewer"} <= set(roles["cluster"])
    assert {"admin", "regular", "viewer", "self-provisioner"} <= set(roles["workspace"])
    assert {"admin", "operator", "viewer"} <= set(roles["namespace"]) & set(roles["devops"])
    system = [d for d in documents() if d["kind"] == "WorkspaceTemplate"]
    assert [d["metadata"]["name"] for d in system] == ["system-workspace"]
