"""Hostile values, and every spec string that reaches a role template (where to set it, a
harmless probe value that marks where it lands, and the roles that render it).

Shared by the unit test that renders the templates (tests/templates/test_hostile.py) and the
cluster test that patches a ClusterConfiguration with each value (tests/installer/test_crd.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HOSTILE: dict[str, str] = {
    "newline-indent": "reg.io\n          workingDir: /tmp",
    "open-brace": "{",
    "close-brace": "}",
    "bracket": "[",
    "hash": "a #b",
    "colon-space": "a: b",
    "quotes": "a\"b'c",
    "jinja": "{{ lookup('pipe','id') }}",
    "4KiB": "x" * 4096,
    "non-ascii": "régistry-名前",
}


def _same(value: str) -> Any:
    return value


@dataclass(frozen=True)
class Field:
    """``path`` of the spec (dotted); ``wrap`` turns the string into what is set there (the
    string as a key of a mapping, or inside a toleration)."""

    path: str
    probe: str
    roles: tuple[str, ...]
    wrap: Callable[[str], Any] = field(default=_same)
    label: str = ""

    @property
    def id(self) -> str:
        return self.label or self.path


def _key(value: str) -> dict[str, str]:
    return {value: "probe"}


def _toleration(value: str) -> list[dict[str, str]]:
    return [{"key": value, "operator": "Exists", "effect": "NoSchedule"}]


IMAGES = ("ks_core", "redis", "openldap", "minio", "jenkins", "devops", "monitoring")

FIELDS: list[Field] = [
    Field("local_registry", "probe-registry.example:5000", IMAGES),
    Field("namespace_override", "probe-mirror", IMAGES),
    Field("persistence.storageClass", "probe-class", ("redis", "openldap", "minio", "jenkins", "monitoring")),
    Field("monitoring.storageClass", "probe-monitoring-class", ("monitoring",)),
    Field("authentication.adminPassword", "Probe-Passw0rd", ("ks_core",)),
    Field("authentication.authenticateRateLimiterDuration", "1717m0s", ("ks_core",)),
    Field("authentication.loginHistoryRetentionPeriod", "1717h", ("ks_core",)),
    Field("authentication.oauthOptions", "probe-oauth-value", ("ks_core",), lambda v: {"probeOption": v}, "authentication.oauthOptions.<value>"),
    Field("authentication.oauthOptions", "probeOauthKey", ("ks_core",), _key, "authentication.oauthOptions.<key>"),
    Field("common.monitoring.endpoint", "http://probe-prometheus.example:9090", ("ks_core",)),
    Field("common.s3.endpoint", "https://probe-s3.example", ("ks_core", "devops")),
    Field("common.s3.region", "probe-region-1", ("devops",)),
    Field("common.s3.bucket", "probe-bucket", ("devops",)),
    Field("monitoring.prometheus.retention", "1717d", ("monitoring",)),
    Field("monitoring.prometheus.volumeSize", "1717Gi", ("monitoring",)),
    Field("common.redis.volumeSize", "1717Mi", ("redis",)),
    Field("common.openldap.volumeSize", "1717Mi", ("openldap",)),
    Field("common.minio.volumeSize", "1717Mi", ("minio",)),
    Field("devops.jenkinsVolumeSize", "1717Gi", ("jenkins",)),
    Field("devops.jenkinsMemoryReq", "1717Mi", ("jenkins",)),
    Field("devops.jenkinsCpuLim", "1717m", ("jenkins",)),
    Field("common.core.nodeSelector", "probe-node-value", ("ks_core",), lambda v: {"probe": v}, "common.core.nodeSelector.<value>"),
    Field("common.core.nodeSelector", "probe.example/key", ("ks_core",), _key, "common.core.nodeSelector.<key>"),
    Field("common.core.tolerations", "probe-taint", ("ks_core",), _toleration, "common.core.tolerations[].key"),
    Field("common.redis.nodeSelector", "probe-node-value", ("redis",), lambda v: {"probe": v}, "common.redis.nodeSelector.<value>"),
    Field("common.openldap.nodeSelector", "probe-node-value", ("openldap",), lambda v: {"probe": v}, "common.openldap.nodeSelector.<value>"),
    Field("common.minio.nodeSelector", "probe-node-value", ("minio",), lambda v: {"probe": v}, "common.minio.nodeSelector.<value>"),
    Field("common.minio.tolerations", "probe-taint", ("minio",), _toleration, "common.minio.tolerations[].key"),
    Field("devops.nodeSelector", "probe-node-value", ("devops", "jenkins"), lambda v: {"probe": v}, "devops.nodeSelector.<value>"),
    Field("devops.nodeSelector", "probe.example/key", ("devops", "jenkins"), _key, "devops.nodeSelector.<key>"),
]  # fmt: skip


def with_value(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``spec`` with ``value`` at dotted ``path`` (parents created)."""
    spec = copy.deepcopy(spec)
    node = spec
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return spec
