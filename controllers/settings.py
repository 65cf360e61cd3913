"""Settings of one ks-controller-manager process: kubesphere.yaml, flags and environment.

``kubesphere.yaml`` (the shared schema, :mod:`kubesphere.config`, read by
ks-apiserver too) gives the rate-limit and login-history rules and the LDAP
server; the flags give where to connect, where to listen and how to elect a
leader.  With no config file the schema's defaults apply (the same values the
installer renders: 10 tries in 10m0s, 168h and 100 login records) and LDAP
sync is off.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from kubesphere import config as ksconfig
from kubesphere.leases import LeaseOptions


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}"


@dataclass(frozen=True)
class LeaderElection:
    enabled: bool = True
    name: str = "ks-controller-manager-leader-election"
    namespace: str = "kubesphere-system"
    identity: str = field(default_factory=default_identity)
    #: Seconds a lease stays valid without renewal; a standby takes over after that.
    duration: float = 15.0
    #: Seconds between renewals by the holder (and attempts by a standby).
    renew: float = 5.0

    def lease(self) -> LeaseOptions:
        return LeaseOptions(
            name=self.name,
            namespace=self.namespace,
            identity=self.identity,
            duration=self.duration,
            renew=self.renew,
        )


@dataclass(frozen=True)
class Settings:
    config: ksconfig.Config = field(default_factory=ksconfig.Config)
    kubeconfig: Path | None = None
    listen_host: str = "0.0.0.0"
    listen_port: int = 8080
    leader: LeaderElection = field(default_factory=LeaderElection)
    #: API server written into each user's kubeconfig ConfigMap.
    kubeconfig_server: str = "https://kubernetes.default.svc"
    #: Namespace of the per-user kubeconfig ConfigMaps.
    controls_namespace: str = "kubesphere-controls-system"
    #: Threads that run the (blocking) handlers; bcrypt releases the GIL in them.
    workers: int = 8

    @property
    def authentication(self) -> ksconfig.Authentication:
        return self.config.authentication


def load_config(path: Path | None, env: dict[str, str] | None = None) -> ksconfig.Config:
    """kubesphere.yaml plus environment; the schema's defaults when there is no file.

    Raises :class:`kubesphere.config.ConfigError` with the offending key on a bad file.
    """
    if path is None:
        return ksconfig.Config()
    if not path.exists():
        raise ksconfig.ConfigError(f"{path}: no such file")
    loaded = ksconfig.load(path, env)
    if loaded.ldap is not None and not loaded.ldap.manager_password:
        raise ksconfig.ConfigError("ldap: no manager password (set KUBESPHERE_LDAP_PASSWORD)")
    return loaded
