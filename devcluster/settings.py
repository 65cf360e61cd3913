"""Where the local control plane keeps its binaries and state, and which versions it runs."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

VERSIONS_FILE = Path(__file__).with_name("versions.env")
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    etcd: str
    kwok: str


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def load_versions(path: Path = VERSIONS_FILE) -> Versions:
    values = _read_env_file(path)
    return Versions(
        kubernetes=values["KUBERNETES_VERSION"],
        etcd=values["ETCD_VERSION"],
        kwok=values["KWOK_VERSION"],
    )


def cache_dir() -> Path:
    """Build cache shared by every checkout on this machine (outside the repo)."""
    env = os.environ.get("KS_DEV_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ks-devcluster"


def state_dir() -> Path:
    """Per-checkout cluster state: PKI, etcd data, logs, kubeconfig (git-ignored)."""
    env = os.environ.get("KS_DEV_STATE")
    if env:
        return Path(env)
    return REPO_ROOT / ".local" / "cluster"


class JsonState:
    """A dataclass kept as JSON in the state dir: a missing or unreadable file means the defaults."""

    @classmethod
    def load(cls, path: Path) -> Self:
        try:
            return cls(**json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return cls()

    def save(self, path: Path) -> None:
        data: Any = asdict(self)  # type: ignore[call-overload]
        path.write_text(json.dumps(data, indent=2) + "\n")
