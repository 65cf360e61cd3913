"""The operator's settings: one typed object, from a YAML file plus environment.

Precedence: command-line flags > ``KS_INSTALLER_<FIELD>`` environment
variables > the settings file > defaults.  The defaults work out of cluster on
the local control plane and in cluster alike.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from installer.components import DEFAULT_TABLE
from installer.errors import ConfigurationError

ENV_PREFIX = "KS_INSTALLER_"


def _default_project_dir() -> Path:
    """The directory holding ansible.cfg, roles/, playbooks/ and collections/."""
    env = os.environ.get("KS_INSTALLER_PROJECT_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent


def _identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class Settings:
    #: The ClusterConfiguration to act on.
    namespace: str = "kubesphere-system"
    name: str = "ks-installer"
    #: Out of cluster: path of a kubeconfig (else KUBECONFIG, then in-cluster config).
    kubeconfig: Path | None = None
    #: Where ansible.cfg, roles/, playbooks/ and collections/ live.
    project_dir: Path = field(default_factory=_default_project_dir)
    #: The component table (see installer/components.yaml).
    component_table: Path = DEFAULT_TABLE
    #: Extra role directories searched before the project's roles/.
    extra_roles_paths: list[Path] = field(default_factory=list)
    #: Global cap on component runs in flight.
    max_parallel: int = 3
    #: Per-run timeout in seconds (a component's own `timeout` in the table wins).
    run_timeout: float = 1800.0
    #: Retry backoff for failed components: base * 2**attempt, capped, with jitter.
    backoff_base: float = 10.0
    backoff_cap: float = 600.0
    #: Seconds between drift checks that re-run enabled components; 0 turns them off.
    drift_interval: float = 0.0
    #: Leader election through a coordination.k8s.io Lease.
    leader_election: bool = True
    lease_name: str = "ks-installer"
    lease_duration: float = 15.0
    lease_renew: float = 5.0
    identity: str = field(default_factory=_identity)
    #: host:port of the health, readiness and metrics endpoints; empty turns them off.
    listen: str = "127.0.0.1:8080"
    #: Keep ansible-runner data dirs (events, stdout) for debugging instead of removing them.
    keep_artifacts: bool = False
    #: Where per-run private data dirs are created (default: the system temp dir).
    work_dir: Path | None = None
    ansible_verbosity: int = 0
    #: Minimum seconds between progress writes to the CR status per component.
    progress_interval: float = 2.0

    @classmethod
    def load(cls, path: Path | None = None, **overrides: Any) -> Settings:
        values: dict[str, Any] = {}
        if path:
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigurationError(f"cannot read settings file {path}: {exc}") from exc
            values.update(_snake(loaded))
        for f in dataclasses.fields(cls):
            env = os.environ.get(ENV_PREFIX + f.name.upper())
            if env is not None:
                values[f.name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "kubeconfig" not in values and os.environ.get("KUBECONFIG"):
            values["kubeconfig"] = os.environ["KUBECONFIG"]
        return cls(**{k: _coerce(cls, k, v) for k, v in values.items()})


def _snake(doc: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in doc.items():
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
        out[snake] = value
    return out


def _coerce(cls: type[Settings], name: str, value: Any) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise ConfigurationError(f"unknown installer setting {name!r}")
    kind = str(fields[name].type)
    try:
        if kind == "bool" and isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind.startswith("Path"):
            return Path(value) if value not in ("", None) else None
        if kind.startswith("list[Path]"):
            items = value.split(":") if isinstance(value, str) else value
            return [Path(v) for v in items if v]
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"setting {name}: cannot use {value!r}: {exc}") from exc
    return value
