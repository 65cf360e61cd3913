"""Kubernetes resource quantities (``500m``, ``2Gi``, ``1e3``): parse, subtract, and write them back.

Exact arithmetic on ``Decimal``.  ``canonical`` spells a value the way the API
server does: binary suffixes (``Ki`` ... ``Ei``) for a quantity written with one
when the value is a whole multiple, otherwise decimal ones (``m``, ``k``, ``M``
... ``E``) with the largest exponent that keeps the number whole.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_FORM = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")


class QuantityError(ValueError):
    """Not a quantity Kubernetes would accept."""


def parse(text: str) -> Decimal:
    match = _FORM.fullmatch(text.strip())
    if match is None:
        raise QuantityError(f"quantities must match the regular expression '{_FORM.pattern}': {text!r}")
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    try:
        if suffix in BINARY:
            return number * BINARY[suffix]
        if suffix in DECIMAL:
            return number.scaleb(DECIMAL[suffix])
        return number.scaleb(int(suffix[1:]))
    except InvalidOperation as exc:
        raise QuantityError(f"{text!r} is out of range") from exc


def is_binary(text: str) -> bool:
    match = _FORM.fullmatch(text.strip())
    return bool(match and (match.group(2) or "") in BINARY)


def canonical(value: Decimal, *, binary: bool = False) -> str:
    if value == 0:
        return "0"
    if binary and value == value.to_integral_value():
        whole = int(value)
        for suffix, size in reversed(BINARY.items()):
            if whole % size == 0:
                return f"{whole // size}{suffix}"
        return str(whole)
    for suffix, exponent in sorted(DECIMAL.items(), key=lambda kv: -kv[1]):
        scaled = value.scaleb(-exponent)
        if scaled == scaled.to_integral_value():
            return f"{int(scaled)}{suffix}"
    # finer than nano: round up to the next nano-unit, as the API server does
    nanos = (value.scaleb(9)).to_integral_value(rounding="ROUND_CEILING")
    return canonical(nanos.scaleb(-9))


def remaining(hard: str, used: str) -> str:
    """``hard - used``, never below zero, in the spelling of ``hard``."""
    left = parse(hard) - parse(used)
    return canonical(max(left, Decimal(0)), binary=is_binary(hard))
