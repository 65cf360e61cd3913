"""The ClusterConfiguration a plan is made for: the live one patched, or one from a file.

``ks-installer plan -p`` takes a patch as ``kubectl patch`` does, against the whole
object (``/spec/devops/enabled``): ``--type json`` is an RFC 6902 JSON patch (a list of
``add``/``remove``/``replace``/``move``/``copy``/``test`` operations), ``--type merge``
an RFC 7386 merge patch (an object; ``null`` removes a key).  Pure functions; every
failure is a :class:`PatchError` with a message that says which operation and path.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from installer.errors import InstallerError


class PatchError(InstallerError):
    """A patch or file that cannot be applied (exit code 2: nothing was asked of the cluster)."""


def _tokens(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"path {pointer!r} is not a JSON pointer (it must start with '/')")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool, path: str) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"path {path!r}: {token!r} is not an array index")
    i = int(token)
    if i > len(container) or (i == len(container) and not for_add):
        raise PatchError(f"path {path!r}: index {i} is out of range")
    return i


def _walk(doc: Any, tokens: list[str], path: str) -> Any:
    """The node at ``tokens`` below ``doc``; PatchError naming ``path`` when one is missing."""
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, for_add=False, path=path)]
        else:
            raise PatchError(f"path {path!r}: {token!r} does not exist")
    return node


def _parent(doc: Any, path: str) -> tuple[Any, str]:
    tokens = _tokens(path)
    if not tokens:
        raise PatchError("the root cannot be the target of this operation")
    return _walk(doc, tokens[:-1], path), tokens[-1]


def _get(doc: Any, path: str) -> Any:
    return _walk(doc, _tokens(path), path)


def _add(doc: Any, path: str, value: Any) -> Any:
    if path == "":
        return value
    parent, last = _parent(doc, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True, path=path), value)
    else:
        raise PatchError(f"path {path!r}: the parent is not an object or array")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parent, last = _parent(doc, path)
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, for_add=False, path=path)]
    else:
        raise PatchError(f"path {path!r} does not exist")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """``doc`` with the RFC 6902 operations ``ops`` applied (``doc`` itself is left alone)."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch (--type json) is a list of operations")
    out = copy.deepcopy(doc)
    for n, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise PatchError(f"operation {n}: needs 'op' and a string 'path'")
        kind, path = op.get("op"), op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {n} ({kind} {path}): needs a 'value'")
        if kind == "add":
            out = _add(out, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            out = _remove(out, path)
        elif kind == "replace":
            _get(out, path)  # must exist
            out = _add(_remove(out, path), path, copy.deepcopy(op["value"])) if path else op["value"]
        elif kind in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise PatchError(f"operation {n} ({kind} {path}): needs a string 'from'")
            value = copy.deepcopy(_get(out, source))
            if kind == "move":
                if path.startswith(source + "/"):
                    raise PatchError(f"operation {n}: cannot move {source!r} into itself")
                out = _remove(out, source)
            out = _add(out, path, value)
        elif kind == "test":
            if _get(out, path) != op["value"]:
                raise PatchError(f"operation {n}: test of {path!r} failed")
        else:
            raise PatchError(f"operation {n}: unknown op {kind!r}")
    return out


def merge_patch(doc: Any, patch: Any) -> Any:
    """``doc`` with the RFC 7386 merge patch ``patch`` applied (``doc`` itself is left alone)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def patched(cc: dict[str, Any], text: str, *, kind: str) -> dict[str, Any]:
    """The ClusterConfiguration ``cc`` with the patch ``text`` (JSON or YAML) of ``kind`` applied."""
    try:
        patch = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PatchError(f"the patch is not valid JSON or YAML: {exc}") from None
    if kind == "json":
        out = json_patch(cc, patch)
    elif kind == "merge":
        if not isinstance(patch, dict):
            raise PatchError("a merge patch (--type merge) is an object")
        out = merge_patch(cc, patch)
    else:
        raise PatchError(f"unknown patch type {kind!r} (json or merge)")
    return checked(out, "the patched ClusterConfiguration")


def from_file(text: str, *, source: str) -> dict[str, Any]:
    """The ClusterConfiguration in ``text`` (YAML; one document of kind ClusterConfiguration)."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise PatchError(f"{source} is not valid YAML: {exc}") from None
    found = [d for d in docs if isinstance(d, dict) and d.get("kind") == "ClusterConfiguration"]
    if len(found) != 1:
        raise PatchError(f"{source}: expected one ClusterConfiguration document, found {len(found)}")
    return checked(found[0], source)


def checked(cc: Any, what: str) -> dict[str, Any]:
    if not isinstance(cc, dict):
        raise PatchError(f"{what} is not an object")
    spec = cc.get("spec")
    if spec is not None and not isinstance(spec, dict):
        raise PatchError(f"{what}: spec is not an object")
    json.dumps(cc, default=str)  # data only
    return cc
