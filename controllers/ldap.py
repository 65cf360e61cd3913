"""LDAP sync: each User mirrored as ``uid=<user>,<userSearchBase>`` in OpenLDAP.

The entry is an ``inetOrgPerson`` with ``cn``/``sn``/``uid`` set to the user
name, ``mail`` from ``spec.email``, ``displayName`` and ``description`` when
set, and ``userPassword`` as ``{CRYPT}<bcrypt hash>``: OpenLDAP hands
``{CRYPT}`` values to the system crypt(3), which on Debian (libxcrypt) checks
``$2b$`` hashes, so a simple bind with the user's password works and no plain
text is ever stored.  Created or updated when the user changes, deleted with it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from controllers.errors import RetryLater
from kubesphere.config import LDAP

log = logging.getLogger(__name__)

OBJECT_CLASSES = ["inetOrgPerson", "organizationalPerson", "person", "top"]
_NO_SUCH_OBJECT, _ALREADY_EXISTS = 32, 68


def user_dn(user: str, base: str) -> str:
    return f"uid={escape_rdn(user)},{base}"


def entry_attributes(user: dict[str, Any]) -> dict[str, str]:
    """The attributes the entry of ``user`` (a User object) should carry."""
    name = user["metadata"]["name"]
    spec = user.get("spec") or {}
    attrs = {"cn": name, "sn": name, "uid": name}
    for key, attr in (("email", "mail"), ("displayName", "displayName"), ("description", "description")):
        if spec.get(key):
            attrs[attr] = str(spec[key])
    password = spec.get("password") or ""
    if password.startswith("$2"):
        attrs["userPassword"] = "{CRYPT}" + password
    return attrs


class LdapSync:
    """One connection, re-opened after a failure; calls are serialised (handlers run in threads)."""

    def __init__(self, options: LDAP, *, timeout: float = 10.0) -> None:
        host, _, port = options.host.rpartition(":") if ":" in options.host else (options.host, "", "389")
        self.options = options
        self.server = ldap3.Server(host, port=int(port), connect_timeout=int(timeout))
        self.timeout = timeout
        self._conn: ldap3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> ldap3.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = ldap3.Connection(
                self.server,
                self.options.manager_dn,
                self.options.manager_password,
                auto_bind=True,
                receive_timeout=int(self.timeout),
                raise_exceptions=False,
            )
        return self._conn

    def _run(self, what: str, op: Any) -> Any:
        with self._lock:
            try:
                return op(self._connection())
            except LDAPException as exc:
                if self._conn is not None:
                    self._conn.unbind()
                self._conn = None
                raise RetryLater(f"LDAP {what}: {exc}", delay=3.0) from exc

    def read(self, user: str) -> dict[str, list[str]] | None:
        def op(conn: ldap3.Connection) -> dict[str, list[str]] | None:
            flt = f"(uid={escape_filter_chars(user)})"
            conn.search(
                user_dn(user, self.options.user_search_base),
                flt,
                search_scope=ldap3.BASE,
                attributes=[ldap3.ALL_ATTRIBUTES],
            )
            if not conn.entries:
                return None
            raw = conn.entries[0].entry_attributes_as_dict
            return {
                k: [v.decode() if isinstance(v, bytes) else str(v) for v in vals] for k, vals in raw.items()
            }

        result: dict[str, list[str]] | None = self._run(f"read {user}", op)
        return result

    def upsert(self, user: dict[str, Any]) -> str:
        """Create or update the entry; returns ``created``, ``updated`` or ``unchanged``."""
        name = user["metadata"]["name"]
        dn = user_dn(name, self.options.user_search_base)
        want = entry_attributes(user)
        have = self.read(name)

        def op(conn: ldap3.Connection) -> str:
            if have is None:
                conn.add(dn, OBJECT_CLASSES, want)
                self._check(conn, f"add {dn}", ok=(0, _ALREADY_EXISTS))
                return "created"
            changes: dict[str, Any] = {}
            for attr, value in want.items():
                if have.get(attr) != [value]:
                    changes[attr] = [(ldap3.MODIFY_REPLACE, [value])]
            for attr in ("mail", "displayName", "description"):
                if attr in have and attr not in want:
                    changes[attr] = [(ldap3.MODIFY_DELETE, [])]
            if not changes:
                return "unchanged"
            conn.modify(dn, changes)
            self._check(conn, f"modify {dn}")
            return "updated"

        result: str = self._run(f"write {dn}", op)
        return result

    def delete(self, user: str) -> bool:
        dn = user_dn(user, self.options.user_search_base)

        def op(conn: ldap3.Connection) -> bool:
            conn.delete(dn)
            self._check(conn, f"delete {dn}", ok=(0, _NO_SUCH_OBJECT))
            return bool(conn.result["result"] == 0)

        result: bool = self._run(f"delete {dn}", op)
        return result

    @staticmethod
    def _check(conn: ldap3.Connection, what: str, ok: tuple[int, ...] = (0,)) -> None:
        code = conn.result.get("result")
        if code not in ok:
            raise RetryLater(f"LDAP {what}: {conn.result.get('description')} {conn.result.get('message')}")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.unbind()
                self._conn = None
