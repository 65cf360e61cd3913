"""What every controller's handlers share: the API, the settings, LDAP, and a role-template cache."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from controllers.kube import Kube
from controllers.ldap import LdapSync
from controllers.settings import Settings
from kubesphere.resources import ROLEBASES, Obj

#: RoleBases change only on upgrade; re-read them at most this often (seconds).
ROLE_BASE_TTL = 30.0


@dataclass
class Context:
    kube: Kube
    settings: Settings
    ldap: LdapSync | None = None
    _bases: dict[str, Obj] = field(default_factory=dict)
    _bases_read: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ready_namespaces: set[str] = field(default_factory=set)

    def role_bases(self) -> dict[str, Obj]:
        """The RoleBase templates by name (``workspace-admin``, ``project-viewer``, ...)."""
        with self._lock:
            if time.monotonic() - self._bases_read < ROLE_BASE_TTL and self._bases:
                return self._bases
        bases = {b["metadata"]["name"]: b for b in self.kube.list(ROLEBASES)}
        with self._lock:
            self._bases, self._bases_read = bases, time.monotonic()
        return bases

    def namespace_known(self, name: str) -> bool:
        with self._lock:
            return name in self._ready_namespaces

    def namespace_seen(self, name: str) -> None:
        with self._lock:
            self._ready_namespaces.add(name)
