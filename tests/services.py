"""Redis and OpenLDAP for tests: the daemons ``make up`` also uses, see devcluster/services.py."""

from devcluster.services import BASE_DN, MANAGER_DN, RedisServer, Slapd, free_port

__all__ = ["BASE_DN", "MANAGER_DN", "RedisServer", "Slapd", "free_port"]
