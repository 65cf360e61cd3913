"""Passwords on User objects: telling a bcrypt hash from plain text, checking and hashing.

KubeSphere keeps ``spec.password`` either as a bcrypt hash or, briefly, as the
plain text a client submitted; the user controller replaces the latter with
its hash (cost 10).  Plain text must be 8-64 characters with a lower-case
letter, an upper-case letter and a digit, the rule ks-apiserver enforces.
"""

from __future__ import annotations

import re

import bcrypt

COST = 10
_BCRYPT = re.compile(r"^\$2[ayb]\$.{56}$")


class WeakPassword(ValueError):
    """The plain-text password breaks the password rule; the message says which part."""


def is_bcrypt(value: str) -> bool:
    return bool(_BCRYPT.match(value))


def check_plain(value: str) -> None:
    """Raise :class:`WeakPassword` unless ``value`` satisfies the password rule."""
    if not 8 <= len(value) <= 64:
        raise WeakPassword("must be 8 to 64 characters long")
    missing = [
        what
        for what, test in (
            ("a lower-case letter", str.islower),
            ("an upper-case letter", str.isupper),
            ("a digit", str.isdigit),
        )
        if not any(test(c) for c in value)
    ]
    if missing:
        raise WeakPassword("must contain " + ", ".join(missing))


def hash_password(value: str, *, cost: int = COST) -> str:
    """The bcrypt hash of ``value`` (``$2b$10$...``); bcrypt releases the GIL while it works."""
    return bcrypt.hashpw(value.encode(), bcrypt.gensalt(rounds=cost)).decode()


def verify(value: str, hashed: str) -> bool:
    return bcrypt.checkpw(value.encode(), hashed.encode())
