"""The rule every role template follows: each ``{{ ... }}`` is one typed scalar.

A template is YAML text, and a value spliced into it unquoted becomes YAML: a newline and
indentation in a spec string adds fields, a ``{`` or ``#`` breaks the document. So every
output expression must end in a filter whose result is one YAML scalar or flow collection
whatever the value holds (``to_json``; JSON is YAML) or a number (``int``), and must not sit
inside a quoted YAML string (``"http://{{ host | to_json }}"`` would double the quotes):
build such strings in the expression, ``{{ ('http://' ~ host) | to_json }}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2 import nodes

#: Filters whose output stays one value in YAML, whatever their input.
SAFE_FILTERS = frozenset({"to_json", "to_nice_json", "int"})

_ENV = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.problem}"


def _source(node: nodes.Expr) -> str:
    """A short rendering of an output expression for messages."""
    if isinstance(node, nodes.Filter):
        inner = _source(node.node) if node.node is not None else "..."
        return f"{inner} | {node.name}"
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        return f"{_source(node.node)}.{node.attr}"
    return type(node).__name__


def findings(source: str, path: str) -> Iterator[Finding]:
    """Every output of ``source`` (a template's text) that breaks the rule above."""
    tree = _ENV.parse(source)
    for output in tree.find_all(nodes.Output):
        line_text = ""  # the YAML text of the current line before the expression
        for child in output.nodes:
            if isinstance(child, nodes.TemplateData):
                line_text = (line_text + child.data).rpartition("\n")[2]
                continue
            if not (isinstance(child, nodes.Filter) and child.name in SAFE_FILTERS):
                yield Finding(
                    path,
                    child.lineno,
                    f"{{{{ {_source(child)} }}}} is spliced into YAML text: end it with | to_json "
                    "(or | int for a number)",
                )
            elif line_text.count('"') % 2 or line_text.count("'") % 2:
                yield Finding(
                    path,
                    child.lineno,
                    f"{{{{ {_source(child)} }}}} sits inside a quoted YAML string: build the whole "
                    "string in the expression, {{ ('prefix' ~ value) | to_json }}",
                )
            line_text += "0"  # the value: one scalar, no quotes, no newline


def role_templates(roles: Path) -> list[Path]:
    return sorted(roles.glob("*/templates/**/*.j2"))
