"""Redis, OpenLDAP and Prometheus for tests: the daemons ``make up`` also uses, see devcluster/services.py."""

from devcluster.services import (
    BASE_DN,
    MANAGER_DN,
    PrometheusServer,
    RedisServer,
    Slapd,
    free_port,
    local_cluster_jobs,
)

__all__ = [
    "BASE_DN",
    "MANAGER_DN",
    "PrometheusServer",
    "RedisServer",
    "Slapd",
    "free_port",
    "local_cluster_jobs",
]
