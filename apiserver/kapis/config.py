"""/kapis/config.kubesphere.io/v1alpha2/configs: what the console reads before anyone logs in.

``oauth`` is the OAuth options without secrets: no clients, identity providers
by name, type and mapping method only, durations in nanoseconds as Go encodes
a ``time.Duration``.  ``configz`` says which optional components this
platform has configured (a section present in kubesphere.yaml and not
switched off).  ``gpu/kinds`` is the ``gpu.kinds`` list (``resourceName``,
``resourceType``, ``default``) the console offers when a container asks for a GPU.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.kapis import common
from apiserver.openapi import Routes
from kubesphere.config import Config

PREFIX = "/kapis/config.kubesphere.io/v1alpha2"
routes = Routes(PREFIX, "Config")
NS = 1_000_000_000
#: kubesphere.yaml sections that mean an optional component, as KubeSphere's configz lists them.
COMPONENTS = (
    "alerting",
    "auditing",
    "devops",
    "events",
    "gateway",
    "kubeedge",
    "ldap",
    "logging",
    "metering",
    "monitoring",
    "multicluster",
    "network",
    "notification",
    "openpitrix",
    "redis",
    "s3",
    "servicemesh",
    "sonarqube",
    "terminal",
)
OAUTH_SCHEMA = {
    "type": "object",
    "properties": {
        "issuer": {"type": "string"},
        "accessTokenMaxAge": {"type": "integer"},
        "accessTokenInactivityTimeout": {"type": "integer"},
        "identityProviders": {"type": "array", "items": {"type": "object"}},
    },
}
CONFIGZ_SCHEMA = {"type": "object", "additionalProperties": {"type": "boolean"}}
GPU_SCHEMA = {
    "type": "array",
    "nullable": True,
    "items": {
        "type": "object",
        "properties": {
            "resourceName": {"type": "string"},
            "resourceType": {"type": "string"},
            "default": {"type": "boolean"},
        },
    },
}


def oauth_options(cfg: Config) -> dict[str, Any]:
    oauth = cfg.authentication.oauth
    return {
        "issuer": oauth.issuer,
        "accessTokenMaxAge": int(oauth.access_token_max_age * NS),
        "accessTokenInactivityTimeout": int(oauth.access_token_inactivity_timeout * NS),
        "identityProviders": [
            {
                "name": p.get("name", ""),
                "type": p.get("type", ""),
                "mappingMethod": p.get("mappingMethod", ""),
            }
            for p in oauth.identity_providers
        ],
    }


def _enabled(section: object) -> bool:
    if not isinstance(section, dict) or not section:
        return False
    for switch in ("enable", "enabled"):
        if switch in section:
            return bool(section[switch])
    return True


def configz(cfg: Config) -> dict[str, bool]:
    found = {name: _enabled(cfg.raw.get(name)) for name in COMPONENTS}
    found["redis"] = cfg.cache.type == "redis"
    # As KubeSphere drops a monitoring section without an endpoint: there is nothing to ask.
    found["monitoring"] = found["monitoring"] and bool(cfg.section("monitoring").get("endpoint"))
    found["ldap"] = cfg.ldap is not None
    found["authentication"] = True
    found["authorization"] = True
    return dict(sorted(found.items()))


@routes.add("GET", "/configs/oauth", summary="OAuth options (no secrets)", response=OAUTH_SCHEMA)
async def get_oauth(request: web.Request) -> web.Response:
    return common.ok(oauth_options(common.ctx(request).config))


def gpu_kinds(cfg: Config) -> list[dict[str, Any]] | None:
    """``gpu.kinds`` of kubesphere.yaml; none configured is ``null``, as KubeSphere answers."""
    kinds = cfg.section("gpu").get("kinds")
    if not isinstance(kinds, list):
        return None
    fields = {"resourceName": str, "resourceType": str, "default": bool}
    shown = [
        {k: cast(item[k]) for k, cast in fields.items() if item.get(k)}
        for item in kinds
        if isinstance(item, dict)
    ]
    return shown or None


@routes.add("GET", "/configs/gpu/kinds", summary="GPU kinds the platform schedules", response=GPU_SCHEMA)
async def get_gpu_kinds(request: web.Request) -> web.Response:
    return common.ok(gpu_kinds(common.ctx(request).config))


@routes.add("GET", "/configs/configz", summary="Which components are configured", response=CONFIGZ_SCHEMA)
async def get_configz(request: web.Request) -> web.Response:
    return common.ok(configz(common.ctx(request).config))
