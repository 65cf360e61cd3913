"""Each hostile value, at each spec string that reaches a template, is refused with its field
path (tests/installer/test_crd.py shows the API server refuses the same values), or lands in
the rendered objects verbatim as that one value, and nothing else in any object changes.

The templates are rendered as the roles render them (tests/templates/render.py). Where a
value lands is learnt from a harmless probe value: the objects rendered with the hostile
value must equal those rendered with the probe, with the probe replaced by the value.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.kubesphere.installer.plugins.filter.spec import spec_problems

from tests.templates.hostile import FIELDS, HOSTILE, Field, with_value
from tests.templates.render import leaves, render_role

REPO = Path(__file__).resolve().parents[2]
#: The sample's spec with every component the templates configure switched on.
BASE: dict[str, Any] = yaml.safe_load((REPO / "deploy" / "cluster-configuration.yaml").read_text())["spec"]
BASE["devops"]["enabled"] = True
BASE["common"]["redis"]["enabled"] = True
# Explicit, so that an external endpoint does not switch the derived default.
BASE["common"]["s3"] = {"disableSSL": True}

Leaves = dict[tuple[str, ...], Any]


def _derived(path: tuple[str, ...]) -> bool:
    """Checksums of rendered configuration change with any value in it."""
    return any("checksum" in part or part.endswith("spec-hash") for part in path)


def _flat(role: str, spec: dict[str, Any]) -> Leaves:
    return {
        (template, *path): value
        for template, docs in render_role(role, spec).items()
        for path, value in leaves(docs)
        if not _derived(path)
    }


@cache
def _base(role: str) -> Leaves:
    return _flat(role, BASE)


@cache
def _probe(field: Field, role: str) -> Leaves:
    return _flat(role, with_value(BASE, field.path, field.wrap(field.probe)))


def _replace(value: Any, probe: str, hostile: str) -> Any:
    return value.replace(probe, hostile) if isinstance(value, str) else value


def test_the_base_spec_is_fine() -> None:
    assert spec_problems(BASE) == []


@pytest.mark.parametrize(
    ("field", "role"),
    [(f, r) for f in FIELDS for r in f.roles],
    ids=lambda v: v.id if isinstance(v, Field) else v,
)
def test_the_probe_lands_and_changes_nothing_else(field: Field, role: str) -> None:
    assert spec_problems(with_value(BASE, field.path, field.wrap(field.probe))) == []
    base, probed = _base(role), _probe(field, role)
    changed = {path: value for path, value in probed.items() if base.get(path, object()) != value}
    assert changed, f"spec.{field.id} does not reach any template of {role}"
    # What the wrapper sets beside the string (a toleration's operator and effect) lands too.
    beside = {value for _, value in leaves(field.wrap(field.probe))}
    for path, value in changed.items():
        assert (
            field.probe in str(value) or field.probe in path or value in beside or path[-1] in field.derived
        ), (
            path,
            value,
        )


@pytest.mark.parametrize("hostile", HOSTILE, ids=str)
@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.id)
def test_a_hostile_value_is_refused_or_lands_verbatim(field: Field, hostile: str) -> None:
    value = HOSTILE[hostile]
    spec = with_value(BASE, field.path, field.wrap(value))
    problems = spec_problems(spec)
    if problems:
        assert all(p.startswith(f"spec.{field.path}") for p in problems), problems
        return
    for role in field.roles:
        expected = {
            tuple(_replace(part, field.probe, value) for part in path): _replace(v, field.probe, value)
            for path, v in _probe(field, role).items()
        }
        assert _flat(role, spec) == expected, (
            f"spec.{field.id} = {hostile} changed more than that value in {role}"
        )
