# Copyright: kubesphere-installer maintainers
# Apache License 2.0
"""The formats of the spec strings the roles act on, and the checks a CRD schema cannot make.

``FORMATS`` is the one table of those formats: the ClusterConfiguration CRD carries the same
``pattern`` and ``maxLength`` at each path (a unit test keeps them equal), so a bad
``kubectl patch`` is refused by the API server with its field path, and the preflight role
applies them to a spec from an inventory, which no API server sees. ``spec_problems`` adds
what a schema cannot say: the keys of mappings (label keys of node selectors, and a bound on
every key, since YAML cannot parse a key longer than 1024 characters).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DOCUMENTATION = r"""
name: spec_problems
short_description: What is wrong with a ClusterConfiguration spec, each with its field path
description:
  - Checks the spec strings the roles act on against the formats the CRD schema also enforces,
    and the keys of mappings, which a schema cannot check.
  - Returns a list of messages naming C(spec.<path>) (never the value); empty when the spec is fine.
"""

# The formats Kubernetes validates names with (DNS-1123 labels and subdomains, label keys
# and values) and the grammar of image references (registry host[:port], path components).
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = rf"{_LABEL}(\.{_LABEL})*"
_DOMAIN_PART = r"[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?"
_PATH_PART = r"[a-z0-9]+(([._]|__|[-]*)[a-z0-9]+)*"
REGISTRY = rf"{_DOMAIN_PART}(\.{_DOMAIN_PART})*(:[0-9]+)?(/{_PATH_PART})*/?"
REPOSITORY_NAMESPACE = rf"{_PATH_PART}(/{_PATH_PART})*"
GO_DURATION = r"([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+"
PROMETHEUS_DURATION = r"([0-9]+(ms|s|m|h|d|w|y))+"
HTTP_URL = r"https?://[^\s/?#]+([/?#]\S*)?"
S3_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
S3_REGION = r"[a-zA-Z0-9_-]+"
LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
LABEL_KEY = rf"({DNS1123_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"

#: Mapping keys (any mapping in the spec) longer than this are refused.
MAX_KEY_LENGTH = 253


@dataclass(frozen=True)
class Format:
    """A spec string's format, as the CRD carries it: ``pattern`` (JSON Schema patterns are
    not anchored, so these are) and ``max_length``; ``what`` names it in messages.
    ``numbers``: a number is a valid value too (quantities)."""

    pattern: str | None
    max_length: int | None
    what: str
    numbers: bool = False
    enum: tuple[str, ...] | None = None

    def problem(self, value: Any) -> str | None:
        if self.numbers and isinstance(value, int | float) and not isinstance(value, bool):
            return None
        if not isinstance(value, str):
            return "is not a string"
        if self.enum is not None and value not in self.enum:
            return f"is not one of {', '.join(self.enum)}"
        if self.max_length is not None and len(value) > self.max_length:
            return f"is longer than {self.max_length} characters"
        if self.pattern and not re.search(self.pattern, value):
            return f"is not {self.what}"
        return None


def _optional(pattern: str, max_length: int | None, what: str) -> Format:
    """``pattern`` or "" (the default)."""
    return Format(f"^({pattern})?$", max_length, what)


def _one_of(*values: str) -> Format:
    return Format(None, None, "one of " + ", ".join(values), enum=values)


_STORAGE_CLASS = _optional(DNS1123_SUBDOMAIN, 253, "a StorageClass name (DNS-1123 subdomain)")
_LABEL_VALUE = Format(f"^{LABEL_VALUE}$", 63, "a label value")
_QUANTITY = Format(QUANTITY, None, "a quantity such as 2Gi or 500m", numbers=True)

#: Path (``*`` = every key of a mapping) → format. The CRD carries the same constraints.
FORMATS: dict[str, Format] = {
    "local_registry": _optional(REGISTRY, 255, "a registry host[:port][/path], e.g. registry.local:5000"),
    "namespace_override": _optional(REPOSITORY_NAMESPACE, 255, "a repository namespace, e.g. mirror or team/mirror"),
    "persistence.storageClass": _STORAGE_CLASS,
    "monitoring.storageClass": _STORAGE_CLASS,
    "authentication.jwtSecret": Format(None, 1024, "a key"),
    "authentication.adminPassword": Format(None, 64, "a password"),
    "authentication.authenticateRateLimiterDuration": _optional(GO_DURATION, 64, "a duration such as 10m0s"),
    "authentication.authenticationRateLimiterDuration": _optional(GO_DURATION, 64, "a duration such as 10m0s"),
    "authentication.loginHistoryRetentionPeriod": _optional(GO_DURATION, 64, "a duration such as 168h"),
    "authentication.maximumClockSkew": _optional(GO_DURATION, 64, "a duration such as 10s"),
    "common.monitoring.endpoint": _optional(HTTP_URL, 2048, "an http(s) URL"),
    "common.s3.endpoint": _optional(HTTP_URL, 2048, "an http(s) URL"),
    "common.s3.region": _optional(S3_REGION, 63, "a region name such as us-east-1"),
    "common.s3.bucket": _optional(S3_BUCKET, 63, "an S3 bucket name"),
    "common.s3.accessKeyID": Format(None, 256, "a key"),
    "common.s3.secretAccessKey": Format(None, 256, "a key"),
    "monitoring.prometheus.retention": _optional(PROMETHEUS_DURATION, 64, "a Prometheus duration such as 7d"),
    "monitoring.prometheus.volumeSize": _QUANTITY,
    "common.redis.volumeSize": _QUANTITY,
    "common.openldap.volumeSize": _QUANTITY,
    "common.minio.volumeSize": _QUANTITY,
    "devops.jenkinsCpuReq": _QUANTITY,
    "devops.jenkinsCpuLim": _QUANTITY,
    "devops.jenkinsMemoryReq": _QUANTITY,
    "devops.jenkinsMemoryLim": _QUANTITY,
    "devops.jenkinsVolumeSize": _QUANTITY,
    "common.core.console.type": _one_of("NodePort", "ClusterIP", "LoadBalancer"),
    "common.monitoring.type": _one_of("internal", "external"),
    "multicluster.clusterRole": _one_of("none", "host", "member"),
    "network.ippool.type": _one_of("none", "calico"),
    "network.topology.type": _one_of("none", "weave-scope"),
    "common.core.nodeSelector.*": _LABEL_VALUE,
    "common.redis.nodeSelector.*": _LABEL_VALUE,
    "common.openldap.nodeSelector.*": _LABEL_VALUE,
    "common.minio.nodeSelector.*": _LABEL_VALUE,
    "devops.nodeSelector.*": _LABEL_VALUE,
}  # fmt: skip

#: Whose ``resources`` (limits and requests) the roles read: quantities.
RESOURCE_OWNERS = (
    "common.core.apiserver",
    "common.core.controllerManager",
    "devops",
    "monitoring.alertmanager",
    "monitoring.kube_rbac_proxy",
    "monitoring.kube_state_metrics",
    "monitoring.node_exporter",
    "monitoring.notification_manager",
    "monitoring.notification_manager.operator",
    "monitoring.notification_manager.proxy",
    "monitoring.prometheus",
    "monitoring.prometheus.adapter",
    "monitoring.prometheus.operator",
)
FORMATS.update(
    {f"{owner}.resources.{kind}.*": _QUANTITY for owner in RESOURCE_OWNERS for kind in ("limits", "requests")}
)

#: Mappings whose keys are label keys (a schema cannot check keys).
LABEL_KEYS = (
    "common.core.nodeSelector",
    "common.redis.nodeSelector",
    "common.openldap.nodeSelector",
    "common.minio.nodeSelector",
    "devops.nodeSelector",
)
_LABEL_KEY_MAX = 253 + 1 + 63


def _segment(key: Any) -> str:
    """A key as a message may show it: plain names as they are, anything else by its kind."""
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z0-9_./-]{1,80}", text) else "<a key that is not a plain name>"


def _at(spec: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(concrete path, value) for ``path``; ``*`` walks every key of a mapping."""
    nodes: list[tuple[str, Any]] = [("", spec)]
    for part in path.split("."):
        step: list[tuple[str, Any]] = []
        for where, node in nodes:
            if not isinstance(node, dict):
                continue
            keys = list(node) if part == "*" else [part] if part in node else []
            step += [(f"{where}.{_segment(key)}" if where else str(key), node[key]) for key in keys]
        nodes = step
    return iter(nodes)


def _keys(node: Any, where: str) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or any(ord(c) < 32 for c in key):
                yield f"spec.{where}: a key is longer than {MAX_KEY_LENGTH} characters or holds control characters"
            else:
                yield from _keys(value, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _keys(value, f"{where}[{i}]")


def format_problems(spec: Any) -> list[str]:
    """Values that do not have their ``FORMATS`` format (the CRD refuses these too)."""
    problems = []
    for path, fmt in FORMATS.items():
        for where, value in _at(spec, path):
            if value is not None and (problem := fmt.problem(value)):
                problems.append(f"spec.{where}: {problem}")
    return problems


def key_problems(spec: Any) -> list[str]:
    """Mapping keys no schema checks: label keys of node selectors, and a bound on every key."""
    problems = list(_keys(spec, ""))
    for path in LABEL_KEYS:
        for where, mapping in _at(spec, path):
            if isinstance(mapping, dict):
                for key in mapping:
                    if isinstance(key, str) and not (
                        len(key) <= _LABEL_KEY_MAX and re.search(f"^({LABEL_KEY})$", key)
                    ):
                        problems.append(f"spec.{where}: a key is not a label key (prefix/name)")
    return problems


def spec_problems(spec: Any) -> list[str]:
    """Every problem of ``spec``, each naming its field (``spec.local_registry: is not ...``)."""
    if not isinstance(spec, dict):
        return ["spec: is not a mapping"]
    return list(dict.fromkeys(key_problems(spec) + format_problems(spec)))


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"spec_problems": spec_problems}
