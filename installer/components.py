"""The declarative component table: what can be installed, when, and after what.

The table is data (``components.yaml`` beside this module by default; the
settings can point elsewhere), so the engine never depends on which roles
exist.  Each entry names its spec switch, its dependencies (optionally
conditional), the role that installs it and the spec paths whose values feed
its digest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from installer.errors import ConfigurationError
from installer.expressions import ExpressionError, compile_expression

DEFAULT_TABLE = Path(__file__).with_name("components.yaml")


@dataclass(frozen=True)
class Need:
    """A dependency on another component, active only while ``when`` holds."""

    name: str
    when: str | bool = True


@dataclass(frozen=True)
class Component:
    name: str
    enabled: str | bool
    role: str | None = None
    needs: tuple[Need, ...] = ()
    inputs: tuple[str, ...] = ()
    status_key: str = ""
    namespace: str | None = None
    supported: bool = True
    timeout: float | None = None
    description: str = ""

    @property
    def key(self) -> str:
        """The key ks-installer uses for this component under ``status``."""
        return self.status_key or self.name


@dataclass(frozen=True)
class ComponentTable:
    components: tuple[Component, ...]
    #: Spec paths that every component's digest includes (image registry overrides…).
    global_inputs: tuple[str, ...] = ()
    #: Role run before any change in a reconcile (validation), if any.
    preflight_role: str | None = None
    source: str = field(default="", compare=False)

    def __iter__(self) -> Iterator[Component]:
        return iter(self.components)

    def __getitem__(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.components]

    def validate(self) -> None:
        """Reject unknown dependencies, cycles, bad expressions and missing roles."""
        names = set(self.names)
        if len(names) != len(self.components):
            raise ConfigurationError(f"{self.source}: duplicate component names")
        for c in self.components:
            try:
                if isinstance(c.enabled, str):
                    compile_expression(c.enabled)
                for need in c.needs:
                    if isinstance(need.when, str):
                        compile_expression(need.when)
            except ExpressionError as exc:
                raise ConfigurationError(f"{self.source}: component {c.name}: {exc}") from exc
            for need in c.needs:
                if need.name not in names:
                    raise ConfigurationError(
                        f"{self.source}: component {c.name} needs unknown component {need.name}"
                    )
            if c.supported and not c.role:
                raise ConfigurationError(f"{self.source}: supported component {c.name} has no role")
        self.topological_order()

    def topological_order(self) -> list[str]:
        """Components ordered so that every one comes after all it may need."""
        order: list[str] = []
        marks: dict[str, str] = {}

        def visit(name: str, path: tuple[str, ...]) -> None:
            if marks.get(name) == "done":
                return
            if marks.get(name) == "active":
                cycle = " -> ".join((*path, name))
                raise ConfigurationError(f"{self.source}: dependency cycle {cycle}")
            marks[name] = "active"
            for need in self[name].needs:
                visit(need.name, (*path, name))
            marks[name] = "done"
            order.append(name)

        for c in self.components:
            visit(c.name, ())
        return order


def _need(raw: Any) -> Need:
    if isinstance(raw, str):
        return Need(raw)
    return Need(name=raw["name"], when=raw.get("when", True))


def parse_table(doc: dict[str, Any], *, source: str = "<table>") -> ComponentTable:
    try:
        components = tuple(
            Component(
                name=c["name"],
                enabled=c.get("enabled", False),
                role=c.get("role"),
                needs=tuple(_need(n) for n in c.get("needs", ())),
                inputs=tuple(c.get("inputs", ())),
                status_key=c.get("statusKey", ""),
                namespace=c.get("namespace"),
                supported=c.get("supported", True),
                timeout=c.get("timeout"),
                description=c.get("description", ""),
            )
            for c in doc["components"]
        )
    except (KeyError, TypeError) as exc:
        raise ConfigurationError(f"{source}: malformed component table: {exc!r}") from exc
    table = ComponentTable(
        components=components,
        global_inputs=tuple(doc.get("globalInputs", ())),
        preflight_role=doc.get("preflightRole"),
        source=source,
    )
    table.validate()
    return table


def load_table(path: Path | None = None) -> ComponentTable:
    path = path or DEFAULT_TABLE
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read component table {path}: {exc}") from exc
    return parse_table(doc, source=str(path))
