# Copyright: kubesphere-installer maintainers
# Apache License 2.0
"""Filters for the installer's roles: images, spec paths, quantities, components."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: installer
short_description: Filters for the kubesphere-installer roles
description:
  - C(image_ref) builds an image reference from a catalog entry, a registry and a namespace override.
  - C(spec_get) reads a dotted path of the ClusterConfiguration spec.
  - C(quantity) turns a Kubernetes quantity into a number.
  - C(desired_components) lists the components a spec switches on, dependencies first.
"""

_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def image_ref(image: dict[str, Any], registry: str = "", namespace_override: str = "") -> str:
    """``{repository: kubesphere/ks-apiserver, tag: v1}`` → ``[registry/]namespace/name:tag``.

    ``namespace_override`` replaces the repository's namespace (all images in one project
    of a private registry); ``registry`` prefixes the registry host.
    """
    try:
        repository = str(image["repository"])
        tag = str(image["tag"])
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"image_ref: catalog entry needs repository and tag, got {image!r}") from exc
    namespace, _, name = repository.rpartition("/")
    if namespace_override:
        namespace = namespace_override
    path = f"{namespace}/{name}" if namespace else name
    registry = (registry or "").rstrip("/")
    return f"{registry}/{path}:{tag}" if registry else f"{path}:{tag}"


def spec_get(spec: Any, path: str, default: Any = None) -> Any:
    """The value at dotted ``path`` of ``spec`` (None, missing or empty string → ``default``)."""
    node = spec
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    if node is None or node == "":
        return default
    return node


def quantity(value: Any) -> float:
    """``4Gi`` → 4294967296.0, ``500m`` → 0.5, ``0.5`` → 0.5 (for comparisons in asserts)."""
    if isinstance(value, bool):
        raise AnsibleFilterError(f"quantity: not a quantity: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise AnsibleFilterError(f"quantity: not a Kubernetes quantity: {value!r}")
    try:
        return float(Decimal(match.group(1)) * Decimal(_SUFFIX[match.group(2) or ""]))
    except InvalidOperation as exc:
        raise AnsibleFilterError(f"quantity: not a Kubernetes quantity: {value!r}") from exc


def claim_shapes(templates: Any) -> list[list[Any]]:
    """``[name, size in bytes, storageClassName]`` of each volume claim template.

    What a role sets in a StatefulSet's ``volumeClaimTemplates`` (which cannot change in
    place), comparable between a rendered template and the live object, whose templates
    carry server defaults besides.
    """
    shapes = []
    for t in templates or []:
        spec = t.get("spec") or {}
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        shapes.append([(t.get("metadata") or {}).get("name"), quantity(size) if size else None,
                       spec.get("storageClassName") or ""])
    return shapes


def desired_components(spec: Any, table: str | None = None) -> list[dict[str, Any]]:
    """Components the spec switches on (and what they need), in install order.

    The operator's own component table and planner decide, so a plain
    ``ansible-playbook`` run installs exactly what the operator would.
    """
    from pathlib import Path

    from installer.components import load_table
    from installer.planner import desired_components as desired

    loaded = load_table(Path(table) if table else None)
    wanted = desired(loaded, dict(spec or {}))
    return [
        {"name": name, "role": loaded[name].role, "reasons": reasons, "namespace": loaded[name].namespace}
        for name, reasons in wanted.items()
    ]


def all_components(table: str | None = None) -> list[dict[str, Any]]:
    """Every supported component of the table, in install order."""
    from pathlib import Path

    from installer.components import load_table

    loaded = load_table(Path(table) if table else None)
    return [
        {"name": name, "role": loaded[name].role, "namespace": loaded[name].namespace}
        for name in loaded.topological_order()
        if loaded[name].supported
    ]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "image_ref": image_ref,
            "spec_get": spec_get,
            "quantity": quantity,
            "claim_shapes": claim_shapes,
            "desired_components": desired_components,
            "all_components": all_components,
        }
