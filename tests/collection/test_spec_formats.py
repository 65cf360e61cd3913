"""The spec formats (the collection's ``spec`` filters) and the CRD schema say the same thing,
and ``spec_problems`` names the field of every value it refuses, never the value."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.kubesphere.installer.plugins.filter.spec import FORMATS, spec_problems

from tests.test_spec_paths import role_spec_paths

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "deploy" / "crds" / "installer.kubesphere.io_clusterconfigurations.yaml"
SPEC_SCHEMA = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
    "properties"
]["spec"]


def schema_at(path: str) -> dict[str, Any]:
    node = SPEC_SCHEMA
    for part in path.split("."):
        node = node["additionalProperties"] if part == "*" else node["properties"][part]
    return node


@pytest.mark.parametrize("path", sorted(FORMATS))
def test_the_crd_carries_the_same_format(path: str) -> None:
    node, fmt = schema_at(path), FORMATS[path]
    assert node.get("pattern") == fmt.pattern, f"spec.{path}: CRD pattern differs from FORMATS"
    assert node.get("maxLength") == fmt.max_length, f"spec.{path}: CRD maxLength differs from FORMATS"
    assert node.get("enum") == (list(fmt.enum) if fmt.enum else None), f"spec.{path}: CRD enum differs"


def _constrained(node: dict[str, Any], path: str) -> Iterator[str]:
    """Paths under ``node`` whose strings the CRD constrains (``*``: any key of a mapping)."""
    if node.get("type") not in ("boolean", "integer") and any(
        k in node for k in ("pattern", "maxLength", "enum")
    ):
        yield path
    for key, child in (node.get("properties") or {}).items():
        yield from _constrained(child, f"{path}.{key}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _constrained(node["additionalProperties"], f"{path}.*")


def test_every_constrained_string_the_roles_read_has_a_format() -> None:
    # So that preflight checks a spec from an inventory as the API server checks a CR.
    constrained: set[str] = set()
    for path in role_spec_paths():
        node: dict[str, Any] | None = SPEC_SCHEMA
        for part in path.split("."):
            node = (node or {}).get("properties", {}).get(part)
        if node is not None:
            constrained |= set(_constrained(node, path))
    assert constrained - set(FORMATS) == set()


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"local_registry": "reg.io\n  workingDir: /"}, "spec.local_registry: is not a registry"),
        ({"local_registry": "r" * 300}, "spec.local_registry: is longer than 255 characters"),
        ({"namespace_override": "Mirror"}, "spec.namespace_override: is not a repository namespace"),
        (
            {"persistence": {"storageClass": "fast ssd"}},
            "spec.persistence.storageClass: is not a StorageClass",
        ),
        (
            {"authentication": {"loginHistoryRetentionPeriod": "7 days"}},
            "loginHistoryRetentionPeriod: is not a duration",
        ),
        (
            {"common": {"monitoring": {"endpoint": "prometheus:9090"}}},
            "spec.common.monitoring.endpoint: is not an http(s) URL",
        ),
        ({"common": {"redis": {"volumeSize": "2 Gi"}}}, "spec.common.redis.volumeSize: is not a quantity"),
        ({"devops": {"jenkinsCpuReq": [1]}}, "spec.devops.jenkinsCpuReq: is not a string"),
        (
            {"devops": {"nodeSelector": {"disk": "fast ssd"}}},
            "spec.devops.nodeSelector.disk: is not a label value",
        ),
        (
            {"devops": {"nodeSelector": {"disk type": "ssd"}}},
            "spec.devops.nodeSelector: a key is not a label key",
        ),
        (
            {"authentication": {"oauthOptions": {"k" * 300: 1}}},
            "spec.authentication.oauthOptions: a key is longer",
        ),
        ({"common": {"core": {"tolerations": [{"key\n": "x"}]}}}, "spec.common.core.tolerations[0]: a key"),
    ],
)
def test_a_bad_value_is_named_by_its_path(spec: dict[str, Any], problem: str) -> None:
    problems = spec_problems(spec)
    assert any(problem in p for p in problems), problems
    assert not any("workingDir" in p or "fast ssd" in p for p in problems)  # paths, not values


def test_the_samples_have_no_problems() -> None:
    for sample in (
        REPO / "deploy" / "cluster-configuration.yaml",
        REPO / "tests/installer/fixtures/ks-installer-v3.4.1-sample.yaml",
    ):
        assert spec_problems(yaml.safe_load(sample.read_text())["spec"]) == [], sample
    group_vars = yaml.safe_load(
        (REPO / "inventory/sample/group_vars/all/cluster-configuration.yml").read_text()
    )
    assert spec_problems(group_vars["ks_spec"]) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("local_registry", "registry.local:5000"),
        ("local_registry", "registry.local:5000/"),
        ("local_registry", "harbor.example.com/kubesphere-mirror"),
        ("local_registry", "localhost:5000"),
        ("namespace_override", "team/mirror"),
        ("persistence.storageClass", "local-path"),
        ("authentication.authenticateRateLimiterDuration", "1h2m3.5s"),
        ("common.s3.endpoint", "https://s3.us-east-1.amazonaws.com"),
        ("monitoring.prometheus.retention", "1y2w"),
    ],
)
def test_good_values_pass(path: str, value: str) -> None:
    spec: dict[str, Any] = {}
    node = spec
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    assert spec_problems(spec) == []
