"""The spec a plan is made for: JSON patches, merge patches and files."""

from __future__ import annotations

from typing import Any

import pytest

from installer.specpatch import PatchError, from_file, json_patch, merge_patch, patched


def cc() -> dict[str, Any]:
    return {
        "apiVersion": "installer.kubesphere.io/v1alpha1",
        "kind": "ClusterConfiguration",
        "metadata": {"name": "ks-installer", "namespace": "kubesphere-system"},
        "spec": {"devops": {"enabled": False}, "list": [1, 2], "a/b": {"~c": 1}},
    }


def test_json_patch_operations() -> None:
    doc = cc()
    out = json_patch(
        doc,
        [
            {"op": "replace", "path": "/spec/devops/enabled", "value": True},
            {"op": "add", "path": "/spec/list/-", "value": 3},
            {"op": "add", "path": "/spec/list/0", "value": 0},
            {"op": "remove", "path": "/spec/a~1b/~0c"},
            {"op": "copy", "from": "/spec/devops", "path": "/spec/copied"},
            {"op": "move", "from": "/spec/copied", "path": "/spec/moved"},
            {"op": "test", "path": "/spec/moved/enabled", "value": True},
        ],
    )
    assert out["spec"] == {
        "devops": {"enabled": True},
        "list": [0, 1, 2, 3],
        "a/b": {},
        "moved": {"enabled": True},
    }
    assert doc == cc()  # the input is left alone


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ({"op": "add"}, "a list of operations"),
        ([{"op": "replace", "path": "/spec/nope/x", "value": 1}], "'/spec/nope/x'"),
        ([{"op": "replace", "path": "/spec/devops"}], "needs a 'value'"),
        ([{"op": "remove", "path": "spec/devops"}], "JSON pointer"),
        ([{"op": "add", "path": "/spec/list/5", "value": 1}], "out of range"),
        ([{"op": "test", "path": "/spec/devops/enabled", "value": True}], "test of"),
        ([{"op": "frobnicate", "path": "/spec"}], "unknown op"),
        ([{"op": "move", "from": "/spec", "path": "/spec/inner"}], "into itself"),
    ],
)
def test_json_patch_errors_say_which_operation(ops: Any, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        json_patch(cc(), ops)


def test_merge_patch_and_text_patches() -> None:
    out = merge_patch(cc(), {"spec": {"devops": {"enabled": True}, "list": None, "new": {"x": 1}}})
    assert out["spec"] == {"devops": {"enabled": True}, "a/b": {"~c": 1}, "new": {"x": 1}}
    assert patched(cc(), "spec: {devops: {enabled: true}}", kind="merge")["spec"]["devops"] == {
        "enabled": True
    }
    replaced = patched(
        cc(), '[{"op": "replace", "path": "/spec/devops/enabled", "value": true}]', kind="json"
    )
    assert replaced["spec"]["devops"]["enabled"] is True
    with pytest.raises(PatchError, match="not valid JSON or YAML"):
        patched(cc(), "[bad", kind="json")
    with pytest.raises(PatchError, match="is an object"):
        patched(cc(), "[]", kind="merge")
    with pytest.raises(PatchError, match="spec is not an object"):
        patched(cc(), '[{"op": "replace", "path": "/spec", "value": 1}]', kind="json")


def test_file_holds_one_cluster_configuration() -> None:
    text = "---\nkind: Namespace\nmetadata: {name: x}\n---\nkind: ClusterConfiguration\nspec: {}\n"
    assert from_file(text, source="cc.yaml")["spec"] == {}
    with pytest.raises(PatchError, match="expected one ClusterConfiguration document, found 0"):
        from_file("kind: Namespace\n", source="cc.yaml")
    with pytest.raises(PatchError, match="not valid YAML"):
        from_file("a: [", source="cc.yaml")
