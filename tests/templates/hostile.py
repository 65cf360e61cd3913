"""Hostile values, and every spec string that reaches a role template (where to set it, a
harmless probe value that marks where it lands, and the roles that render it).

Shared by the unit test that renders the templates (tests/templates/test_hostile.py) and the
cluster test that patches a ClusterConfiguration with each value (tests/installer/test_crd.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Field:
    """A spec string at dotted ``path``; ``kind`` says where the string goes there: the value
    itself, a value or a key of the mapping at ``path``, or a toleration's key."""

    path: str
    probe: str
    roles: tuple[str, ...]
    kind: str = "value"  # value | map-value | map-key | toleration | limit
    #: Leaves the value also switches by design (named by their last key).
    derived: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        suffix = {
            "value": "",
            "map-value": ".<value>",
            "map-key": ".<key>",
            "toleration": "[].key",
            "limit": ".limits.memory",
        }
        return self.path + suffix[self.kind]

    def wrap(self, value: str) -> Any:
        """What is set at ``path`` for the string ``value``."""
        if self.kind == "map-value":
            return {"probe": value}
        if self.kind == "map-key":
            return {value: "probe"}
        if self.kind == "limit":
            return {"limits": {"memory": value}}
        if self.kind == "toleration":
            return [{"key": value, "operator": "Exists", "effect": "NoSchedule"}]
        return value


IMAGES = ("ks_core", "redis", "openldap", "minio", "jenkins", "devops", "monitoring")
PVCS = ("redis", "openldap", "minio", "jenkins", "monitoring")
DEVOPS = ("devops", "jenkins")
NODE = "probe-node-value"
LABEL_KEY = "probe.example/key"

FIELDS: list[Field] = [
    Field("local_registry", "probe-registry.example:5000", IMAGES),
    Field("namespace_override", "probe-mirror", IMAGES),
    Field("persistence.storageClass", "probe-class", PVCS),
    Field("monitoring.storageClass", "probe-monitoring-class", ("monitoring",)),
    Field("authentication.adminPassword", "Probe-Passw0rd", ("ks_core",)),
    Field("authentication.authenticateRateLimiterDuration", "1717m0s", ("ks_core",)),
    Field("authentication.loginHistoryRetentionPeriod", "1717h", ("ks_core",)),
    Field("authentication.oauthOptions", "probe-oauth-value", ("ks_core",), "map-value"),
    Field("authentication.oauthOptions", "probeOauthKey", ("ks_core",), "map-key"),
    Field("common.core.console.type", "LoadBalancer", ("ks_core",)),
    Field("multicluster.clusterRole", "member", ("ks_core",), derived=("accessTokenMaxAge", "enable")),
    Field("common.core.apiserver.resources", "1717Mi", ("ks_core",), "limit"),
    Field("common.core.controllerManager.resources", "1717Mi", ("ks_core",), "limit"),
    Field("devops.resources", "1717Mi", ("devops",), "limit"),
    Field("monitoring.prometheus.resources", "1717Mi", ("monitoring",), "limit"),
    Field("monitoring.alertmanager.resources", "1717Mi", ("monitoring",), "limit"),
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
    # -XX:MaxRAM in JAVA_TOOL_OPTIONS follows the memory limit.
    Field("devops.jenkinsMemoryLim", "1717Mi", ("jenkins",), derived=("value",)),
    Field("devops.jenkinsCpuReq", "1717m", ("jenkins",)),
    Field("devops.jenkinsCpuLim", "1717m", ("jenkins",)),
    Field("common.core.nodeSelector", NODE, ("ks_core",), "map-value"),
    Field("common.core.nodeSelector", LABEL_KEY, ("ks_core",), "map-key"),
    Field("common.core.tolerations", "probe-taint", ("ks_core",), "toleration"),
    Field("common.redis.nodeSelector", NODE, ("redis",), "map-value"),
    Field("common.openldap.nodeSelector", NODE, ("openldap",), "map-value"),
    Field("common.minio.nodeSelector", NODE, ("minio",), "map-value"),
    Field("common.minio.tolerations", "probe-taint", ("minio",), "toleration"),
    Field("devops.nodeSelector", NODE, DEVOPS, "map-value"),
    Field("devops.nodeSelector", LABEL_KEY, DEVOPS, "map-key"),
]


def with_value(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``spec`` with ``value`` at dotted ``path`` (parents created)."""
    spec = copy.deepcopy(spec)
    node = spec
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return spec
