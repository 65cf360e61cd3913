"""kubesphere.yaml: the platform configuration ks-apiserver and ks-controller-manager share.

This module is the one schema of that file and holds its defaults; the core
role renders the file into the ``kubesphere-config`` ConfigMap
(``roles/ks_core/templates/kubesphere.yaml.j2``) from defaults that say the
same (a unit test holds the role's defaults and the docs to these).  It holds no secrets: the JWT
key and the Redis and LDAP passwords come from the environment
(``KUBESPHERE_JWT_SECRET``, ``KUBESPHERE_CACHE_PASSWORD``,
``KUBESPHERE_LDAP_PASSWORD``), which the Deployments fill from Secrets.

Durations are Go duration strings as KubeSphere writes them (``10m0s``,
``168h``, ``2h``); they are parsed into seconds.  Unknown keys are kept in
``raw`` and ignored, so a newer file never stops an older server.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(ValueError):
    """The configuration file or environment is unusable; the message names the key."""


def parse_duration(value: object, *, key: str) -> float:
    """Seconds from a Go duration string (``1h30m``), a number of seconds, or ``0``."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration such as 10m0s, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a duration such as 10m0s, got {value!r}")
    text = value.strip()
    if text in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise ConfigError(f"{key}: {value!r} is not a duration (examples: 10m0s, 168h, 2h)")
    return total


def format_duration(seconds: float) -> str:
    """The Go-style spelling of a number of seconds (``600`` -> ``10m0s``)."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@dataclass(frozen=True)
class OAuthClient:
    name: str
    secret: str
    redirect_uris: tuple[str, ...] = ()
    grant_method: str = "auto"


@dataclass(frozen=True)
class OAuthOptions:
    issuer: str = "kubesphere"
    access_token_max_age: float = 7200.0
    access_token_inactivity_timeout: float = 7200.0
    clients: tuple[OAuthClient, ...] = ()
    identity_providers: tuple[dict[str, Any], ...] = ()
    #: The RSA key that signs ID tokens (PEM file ``signKey``, or the PEM itself, maybe base64, in
    #: ``signKeyData``); without one each ks-apiserver process generates its own.
    sign_key: str = ""
    sign_key_data: str = ""


@dataclass(frozen=True)
class Authentication:
    #: Failed logins within ``rate_limiter_duration`` that limit a user (AuthLimitExceeded).
    rate_limiter_max_tries: int = 10
    rate_limiter_duration: float = 600.0
    login_history_retention: float = 168 * 3600.0
    login_history_max_entries: int = 100
    maximum_clock_skew: float = 10.0
    multiple_login: bool = False
    jwt_secret: str = ""
    oauth: OAuthOptions = field(default_factory=OAuthOptions)


@dataclass(frozen=True)
class Cache:
    type: str = "inmemory"
    host: str = "127.0.0.1"
    port: int = 6379
    password: str = ""
    db: int = 0


@dataclass(frozen=True)
class LDAP:
    host: str
    manager_dn: str
    manager_password: str = ""
    user_search_base: str = "ou=Users,dc=kubesphere,dc=io"
    group_search_base: str = "ou=Groups,dc=kubesphere,dc=io"


@dataclass(frozen=True)
class Config:
    authentication: Authentication = field(default_factory=Authentication)
    authorization_mode: str = "RBAC"
    cache: Cache = field(default_factory=Cache)
    ldap: LDAP | None = None
    #: The whole parsed file, for sections only one process reads (devops, gateway, ...).
    raw: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name)
        return value if isinstance(value, dict) else {}


def _mapping(raw: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}{key}: expected a mapping, got {type(value).__name__}")
    return value


def _int(raw: dict[str, Any], key: str, default: int, path: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{path}{key}: expected an integer, got {value!r}")
    return value


def _oauth(raw: dict[str, Any]) -> OAuthOptions:
    path = "authentication.oauthOptions."
    clients = []
    for i, item in enumerate(raw.get("clients") or []):
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"{path}clients[{i}]: needs a name")
        clients.append(
            OAuthClient(
                name=str(item["name"]),
                secret=str(item.get("secret", "")),
                redirect_uris=tuple(str(u) for u in item.get("redirectURIs") or ()),
                grant_method=str(item.get("grantMethod", "auto")),
            )
        )
    defaults = OAuthOptions()
    return OAuthOptions(
        issuer=str(raw.get("issuer") or defaults.issuer),
        access_token_max_age=parse_duration(
            raw.get("accessTokenMaxAge", defaults.access_token_max_age), key=path + "accessTokenMaxAge"
        ),
        access_token_inactivity_timeout=parse_duration(
            raw.get("accessTokenInactivityTimeout", defaults.access_token_inactivity_timeout),
            key=path + "accessTokenInactivityTimeout",
        ),
        clients=tuple(clients),
        identity_providers=tuple(p for p in raw.get("identityProviders") or () if isinstance(p, dict)),
        sign_key=str(raw.get("signKey") or ""),
        sign_key_data=str(raw.get("signKeyData") or ""),
    )


def parse(raw: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    """A Config from the parsed file plus environment (``os.environ`` by default)."""
    env = dict(os.environ) if env is None else env
    if not isinstance(raw, dict):
        raise ConfigError("kubesphere.yaml: expected a mapping at the top level")
    a = _mapping(raw, "authentication", "")
    p = "authentication."
    defaults = Authentication()
    authn = Authentication(
        rate_limiter_max_tries=_int(a, "authenticateRateLimiterMaxTries", defaults.rate_limiter_max_tries, p),
        rate_limiter_duration=parse_duration(
            a.get("authenticateRateLimiterDuration", defaults.rate_limiter_duration),
            key=p + "authenticateRateLimiterDuration",
        ),
        login_history_retention=parse_duration(
            a.get("loginHistoryRetentionPeriod", defaults.login_history_retention),
            key=p + "loginHistoryRetentionPeriod",
        ),
        login_history_max_entries=_int(
            a, "loginHistoryMaximumEntries", defaults.login_history_max_entries, p
        ),
        maximum_clock_skew=parse_duration(
            a.get("maximumClockSkew", defaults.maximum_clock_skew), key=p + "maximumClockSkew"
        ),
        multiple_login=bool(a.get("multipleLogin", defaults.multiple_login)),
        jwt_secret=env.get("KUBESPHERE_JWT_SECRET") or str(a.get("jwtSecret") or ""),
        oauth=_oauth(_mapping(a, "oauthOptions", p)),
    )
    if authn.rate_limiter_max_tries < 1:
        raise ConfigError(f"{p}authenticateRateLimiterMaxTries: must be at least 1")
    if authn.rate_limiter_duration <= 0:
        raise ConfigError(f"{p}authenticateRateLimiterDuration: must be positive")
    if authn.login_history_max_entries < 1:
        raise ConfigError(f"{p}loginHistoryMaximumEntries: must be at least 1")
    mode = str(_mapping(raw, "authorization", "").get("mode") or "RBAC")
    if mode not in ("RBAC", "AlwaysAllow", "AlwaysDeny"):
        raise ConfigError(f"authorization.mode: {mode!r} is not one of RBAC, AlwaysAllow, AlwaysDeny")
    c = _mapping(raw, "cache", "")
    opts = _mapping(c, "options", "cache.")
    cache_type = str(c.get("type") or "inmemory")
    if cache_type not in ("redis", "inmemory"):
        raise ConfigError(f"cache.type: {cache_type!r} is not one of redis, inmemory")
    cache = Cache(
        type=cache_type,
        host=str(opts.get("host") or "127.0.0.1"),
        port=_int(opts, "port", 6379, "cache.options."),
        password=env.get("KUBESPHERE_CACHE_PASSWORD") or str(opts.get("password") or ""),
        db=_int(opts, "db", 0, "cache.options."),
    )
    ldap = None
    lraw = _mapping(raw, "ldap", "")
    if lraw:
        if not lraw.get("host") or not lraw.get("managerDN"):
            raise ConfigError("ldap: needs host and managerDN")
        ldap = LDAP(
            host=str(lraw["host"]),
            manager_dn=str(lraw["managerDN"]),
            manager_password=env.get("KUBESPHERE_LDAP_PASSWORD") or str(lraw.get("managerPassword") or ""),
            user_search_base=str(lraw.get("userSearchBase") or LDAP.user_search_base),
            group_search_base=str(lraw.get("groupSearchBase") or LDAP.group_search_base),
        )
    return Config(authentication=authn, authorization_mode=mode, cache=cache, ldap=ldap, raw=raw)


def load(path: Path | None, env: dict[str, str] | None = None) -> Config:
    """Read ``path`` (a missing path means all defaults) and the environment."""
    if path is None:
        return parse({}, env)
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse(raw, env)
