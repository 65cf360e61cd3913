"""The kubesphere.installer collection's pure logic: filters, the three-way merge, docs."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.kubesphere.installer.plugins.filter import installer as filters
from ansible_collections.kubesphere.installer.plugins.module_utils.merge import three_way_merge

IMAGE = {"repository": "kubesphere/ks-apiserver", "tag": "v3.4.1"}


@pytest.mark.parametrize(
    ("registry", "override", "expected"),
    [
        ("", "", "kubesphere/ks-apiserver:v3.4.1"),
        ("registry.local:5000", "", "registry.local:5000/kubesphere/ks-apiserver:v3.4.1"),
        ("registry.local:5000/", "mirror", "registry.local:5000/mirror/ks-apiserver:v3.4.1"),
        ("", "mirror", "mirror/ks-apiserver:v3.4.1"),
    ],
)
def test_image_ref_honours_registry_and_namespace_override(
    registry: str, override: str, expected: str
) -> None:
    assert filters.image_ref(IMAGE, registry, override) == expected


def test_image_ref_without_namespace_and_bad_entries() -> None:
    assert filters.image_ref({"repository": "busybox", "tag": "1"}, "r.local") == "r.local/busybox:1"
    with pytest.raises(AnsibleFilterError, match="repository and tag"):
        filters.image_ref({"repository": "x"})


def test_spec_get() -> None:
    spec = {"common": {"redis": {"volumeSize": "2Gi", "empty": ""}}, "local_registry": None}
    assert filters.spec_get(spec, "common.redis.volumeSize") == "2Gi"
    assert filters.spec_get(spec, "common.redis.missing", "5Gi") == "5Gi"
    assert filters.spec_get(spec, "common.redis.empty", "d") == "d"
    assert filters.spec_get(spec, "local_registry", "") == ""
    assert filters.spec_get(None, "a.b", 1) == 1


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("4Gi", 4 * 2**30),
        ("500m", 0.5),
        (0.5, 0.5),
        (1, 1.0),
        ("1", 1.0),
        ("2k", 2000.0),
        ("1.5Gi", 1.5 * 2**30),
    ],
)
def test_quantity(value: Any, number: float) -> None:
    assert filters.quantity(value) == pytest.approx(number)


@pytest.mark.parametrize("bad", ["lots", "4GB", True, "", "1..2"])
def test_quantity_rejects(bad: Any) -> None:
    with pytest.raises(AnsibleFilterError):
        filters.quantity(bad)


def test_desired_components_follow_the_operator_table() -> None:
    spec = {"devops": {"enabled": True}, "common": {"redis": {"enabled": False}}}
    names = [c["name"] for c in filters.desired_components(spec)]
    assert names.index("openldap") < names.index("jenkins") < names.index("devops")
    assert "redis" not in names and "minio" in names
    assert all(c["role"] for c in filters.desired_components(spec))
    assert next(c["name"] for c in filters.all_components()) == "redis"


class TestThreeWayMerge:
    def test_first_apply_takes_everything(self) -> None:
        assert three_way_merge(None, {}, {"a": 1, "b": {"c": 2}}) == {"a": 1, "b": {"c": 2}}

    def test_untouched_values_follow_the_new_render(self) -> None:
        last = {"a": 1, "b": {"c": 2}}
        assert three_way_merge(last, last, {"a": 10, "b": {"c": 20}}) == {"a": 10, "b": {"c": 20}}

    def test_hand_edits_and_hand_added_keys_survive(self) -> None:
        last = {"auth": {"skew": "10s", "multi": True}}
        live = {"auth": {"skew": "20s", "multi": True}, "notification": {"endpoint": "x"}}
        desired = {"auth": {"skew": "10s", "multi": False}}
        kept: list[str] = []
        merged = three_way_merge(last, live, desired, kept=kept)
        assert merged == {"auth": {"skew": "20s", "multi": False}, "notification": {"endpoint": "x"}}
        assert kept == ["auth.skew"]

    def test_keys_no_longer_rendered_go_unless_edited(self) -> None:
        last = {"cache": {"type": "redis"}, "ldap": {"host": "a"}}
        live = {"cache": {"type": "redis"}, "ldap": {"host": "edited"}}
        merged = three_way_merge(last, live, {})
        assert merged == {"ldap": {"host": "edited"}}

    def test_without_last_applied_existing_values_count_as_hand_set(self) -> None:
        kept: list[str] = []
        merged = three_way_merge(None, {"a": 1, "c": 3}, {"a": 2, "b": 2}, kept=kept)
        assert merged == {"a": 1, "c": 3, "b": 2}
        assert kept == ["a"]

    def test_merge_is_stable(self) -> None:
        last = {"a": {"b": 1}}
        live = {"a": {"b": 5}, "z": 1}
        desired = {"a": {"b": 2}}
        once = three_way_merge(last, live, desired)
        assert three_way_merge(desired, once, desired) == once


@pytest.mark.parametrize("module", ["kubesphere_config", "cc_status"])
def test_modules_are_documented_the_kubernetes_core_way(module: str) -> None:
    mod = importlib.import_module(f"ansible_collections.kubesphere.installer.plugins.modules.{module}")
    doc = yaml.safe_load(mod.DOCUMENTATION)
    assert doc["module"] == module
    assert "kubernetes.core.k8s_auth_options" in doc["extends_documentation_fragment"]
    examples = yaml.safe_load(mod.EXAMPLES)
    assert all(f"kubesphere.installer.{module}" in task for task in examples)
    returns = yaml.safe_load(mod.RETURN)
    for key, value in returns.items():
        assert {"description", "returned", "type"} <= set(value), key
    spec = mod.argspec()
    for option, value in doc["options"].items():
        assert spec[option]["type"] == value["type"], option


def test_cc_status_entry_keeps_enabled_time() -> None:
    from ansible_collections.kubesphere.installer.plugins.modules import cc_status

    first = cc_status.desired_entry(None, "enabled", "core", "v0.1.0")
    assert (
        first["status"] == "enabled" and first["version"] == "v0.1.0" and first["enabledTime"].endswith("UTC")
    )
    again = cc_status.desired_entry(first, "enabled", "core", "v0.1.0")
    assert again == first
    assert cc_status.desired_entry(first, "failed", "core", None)["status"] == "failed"
    assert cc_status.desired_entry(first, "absent", "core", None) is None


@pytest.mark.parametrize("module", ["apply", "info", "inventory"])
def test_action_plugins_document_every_option_they_take(module: str) -> None:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

    mod = importlib.import_module(f"ansible_collections.kubesphere.installer.plugins.modules.{module}")
    action = importlib.import_module(f"ansible_collections.kubesphere.installer.plugins.action.{module}")
    doc = yaml.safe_load(mod.DOCUMENTATION)
    assert doc["module"] == module
    for key, value in yaml.safe_load(mod.RETURN).items():
        assert {"description", "returned", "type"} <= set(value), key
    taken = {k: v for k, v in action.ARGUMENT_SPEC.items() if k not in AUTH_ARG_SPEC}
    assert set(doc["options"]) == set(taken)
    for option, value in doc["options"].items():
        assert taken[option]["type"] == value["type"], option
