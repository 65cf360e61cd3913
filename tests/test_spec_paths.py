"""Every spec field a role or the component table reads survives the CRD's schema.

A typed object without ``x-kubernetes-preserve-unknown-fields`` prunes fields it does
not list, so a field the roles read but the schema does not declare would be dropped
silently from a user's ClusterConfiguration. Each such field must also be documented.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CRD = REPO / "deploy" / "crds" / "installer.kubesphere.io_clusterconfigurations.yaml"


def role_spec_paths() -> set[str]:
    paths: set[str] = set()
    for f in (REPO / "roles").glob("*/defaults/main.yml"):
        paths |= set(re.findall(r"spec_get\('([^']+)'", f.read_text()))
    table = yaml.safe_load((REPO / "installer" / "components.yaml").read_text())
    for c in table["components"]:
        paths |= set(c.get("inputs", []))
        for expr in [c.get("enabled")] + [n.get("when") for n in c.get("needs", []) if isinstance(n, dict)]:
            if isinstance(expr, str):
                paths |= set(re.findall(r"\b([a-z_]+(?:\.[A-Za-z_]+)+)\b", expr))
    return paths


def kept(schema: dict[str, Any], path: str) -> bool:
    node = schema
    for part in path.split("."):
        if node.get("x-kubernetes-preserve-unknown-fields"):
            return True
        props = node.get("properties") or {}
        if part not in props:
            return False
        node = props[part]
    return True


SPEC = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
    "spec"
]


@pytest.mark.parametrize("path", sorted(role_spec_paths()))
def test_field_is_declared_by_the_schema(path: str) -> None:
    # The top-level spec preserves unknown fields, so check the typed subtree itself.
    top = path.split(".")[0]
    if top not in SPEC.get("properties", {}):
        pytest.fail(f"spec.{top} is not declared in the CRD schema")
    assert kept(SPEC["properties"][top], ".".join(path.split(".")[1:])) if "." in path else True, (
        f"spec.{path} would be pruned by the CRD schema"
    )


@pytest.mark.parametrize("path", sorted(role_spec_paths()))
def test_field_is_documented(path: str) -> None:
    doc = (REPO / "docs" / "cluster-configuration.md").read_text()
    assert f"`{path}`" in doc, f"spec.{path} is not documented in docs/cluster-configuration.md"
