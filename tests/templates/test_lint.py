"""Every role template passes the one-typed-scalar rule (tests/templates/lint.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.templates.lint import findings, role_templates

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = role_templates(REPO / "roles")


def test_there_are_templates_to_check() -> None:
    assert len(TEMPLATES) > 30


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(REPO / "roles")))
def test_every_output_is_one_typed_scalar(path: Path) -> None:
    found = [str(f) for f in findings(path.read_text(), str(path.relative_to(REPO)))]
    assert not found, "values spliced into YAML text:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "line", "problem"),
    [
        ("spec:\n  image: {{ ks_local_registry }}/x\n", 2, "ks_local_registry }} is spliced"),
        ("a: 1\nb: {{ ks_spec.x | default('') }}\n", 2, "default }} is spliced"),
        ("b: {{ ks_images.x | kubesphere.installer.image_ref(r, n) }}\n", 1, "image_ref }} is spliced"),
        ("{% for k in m %}\n  {{ k }}: {{ m[k] | to_json }}\n{% endfor %}\n", 2, "{{ k }} is spliced"),
        ("{% if x %}\nc: {{ x | string }}\n{% endif %}\n", 2, "x | string }} is spliced"),
        ('env: {value: "http://{{ host | to_json }}.svc"}\n', 1, "inside a quoted YAML string"),
        ("x: {{ n | bool }}\n", 1, "n | bool }} is spliced"),
    ],
)
def test_an_unquoted_value_is_found_with_its_line(source: str, line: int, problem: str) -> None:
    found = list(findings(source, "roles/probe/templates/probe.yaml.j2"))
    assert found, source
    assert found[0].line == line
    assert problem in found[0].problem or problem in str(found[0]), found[0]
    assert str(found[0]).startswith(f"roles/probe/templates/probe.yaml.j2:{line}: ")


@pytest.mark.parametrize(
    "source",
    [
        "a: {{ x | to_json }}\nb: {{ (p + 1) | int }}\n",
        "c: {{ ('http://' ~ host ~ '.svc') | to_json }}\n",
        "d: {{ m | combine({'a': 1}) | to_json }}  # it's fine after a comment's apostrophe\n",
        "{% set s %}\nk: {{ v | to_json }}\n{% endset %}\ne: {{ s | from_yaml | to_json }}\n",
    ],
)
def test_typed_scalars_pass(source: str) -> None:
    assert list(findings(source, "probe.j2")) == []
