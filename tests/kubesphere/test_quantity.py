"""Resource quantities as the API server writes them, and what a quota has left."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kubesphere import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", 2),
        ("500m", Decimal("0.5")),
        ("1Gi", 2**30),
        ("1.5k", 1500),
        ("1e3", 1000),
        ("100Mi", 100 * 2**20),
    ],
)
def test_parse(text: str, value: Decimal | int) -> None:
    assert quantity.parse(text) == Decimal(value)


@pytest.mark.parametrize("bad", ["", "1 Gi", "Gi", "1GiB", "1.2.3", "--1"])
def test_parse_refuses_what_kubernetes_refuses(bad: str) -> None:
    with pytest.raises(quantity.QuantityError):
        quantity.parse(bad)


def test_canonical_spelling() -> None:
    assert quantity.canonical(Decimal("0.5")) == "500m"
    assert quantity.canonical(Decimal(3000)) == "3k"
    assert quantity.canonical(Decimal(2**31), binary=True) == "2Gi"
    assert quantity.canonical(Decimal(1536), binary=True) == "1536"  # no whole binary unit: plain
    assert quantity.canonical(Decimal(0)) == "0"


def test_remaining_never_goes_below_zero_and_keeps_the_units() -> None:
    assert quantity.remaining("10", "3") == "7"
    assert quantity.remaining("2Gi", "512Mi") == "1536Mi"
    assert quantity.remaining("2", "500m") == "1500m"
    assert quantity.remaining("1", "4") == "0"
