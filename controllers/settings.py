"""Settings of one ks-controller-manager process: kubesphere.yaml, flags and environment.

``kubesphere.yaml`` (parsed by :mod:`apiserver.config`, shared with ks-apiserver)
gives the rate-limit and login-history rules and the LDAP server; the flags
give where to connect, where to listen and how to elect a leader.  With no
config file the installer's defaults apply (10 tries in 10m0s, 168h and 100
login records) and LDAP sync is off.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from apiserver import config as ksconfig

#: What the installer renders into kubesphere.yaml when the spec says nothing.
INSTALLER_AUTHENTICATION = ksconfig.Authentication(
    rate_limiter_max_tries=10,
    rate_limiter_duration=600.0,
    login_history_retention=168 * 3600.0,
    login_history_max_entries=100,
)


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
    """kubesphere.yaml plus environment; installer defaults when there is no file.

    Raises :class:`apiserver.config.ConfigError` with the offending key on a bad file.
    """
    if path is None:
        return ksconfig.Config(authentication=INSTALLER_AUTHENTICATION, ldap=None)
    if not path.exists():
        raise ksconfig.ConfigError(f"{path}: no such file")
    loaded = ksconfig.load(path, env)
    a = loaded.authentication
    if a.rate_limiter_max_tries < 1:
        raise ksconfig.ConfigError("authentication.authenticateRateLimiterMaxTries: must be at least 1")
    if a.rate_limiter_duration <= 0:
        raise ksconfig.ConfigError("authentication.authenticateRateLimiterDuration: must be positive")
    if a.login_history_max_entries < 1:
        raise ksconfig.ConfigError("authentication.loginHistoryMaximumEntries: must be at least 1")
    if loaded.ldap is not None and not loaded.ldap.manager_password:
        raise ksconfig.ConfigError("ldap: no manager password (set KUBESPHERE_LDAP_PASSWORD)")
    return loaded
