"""List queries: filters, label selectors, sorting and paging (pure logic; HTTP: test_resources.py)."""

from __future__ import annotations

from typing import Any

import pytest

from apiserver.query import Query, SelectorError, page, parse_selector, selector_matches


def obj(
    name: str, created: str, *, ns: str = "", labels: dict[str, str] | None = None, **meta: Any
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "creationTimestamp": created,
            "labels": labels or {},
            **meta,
        }
    }


ITEMS = [
    obj(
        "alpha",
        "2026-01-01T00:00:00Z",
        ns="a",
        labels={"app": "web", "tier": "front"},
        uid="u1",
        annotations={"kubesphere.io/alias-name": "The First"},
    ),
    obj(
        "beta",
        "2026-01-03T00:00:00Z",
        ns="b",
        labels={"app": "db"},
        ownerReferences=[{"kind": "ReplicaSet", "uid": "rs-1", "name": "r"}],
    ),
    obj("gamma", "2026-01-02T00:00:00Z", ns="a", labels={"app": "web"}),
    obj("alphabet", "2026-01-04T00:00:00Z", ns="b"),
]


def names(params: dict[str, str]) -> list[str]:
    result = page(ITEMS, Query.parse(params))
    return [o["metadata"]["name"] for o in result["items"]]


def test_default_is_newest_first_and_unpaged() -> None:
    result = page(ITEMS, Query.parse({}))
    assert result["totalItems"] == 4
    assert [o["metadata"]["name"] for o in result["items"]] == ["alphabet", "beta", "gamma", "alpha"]


def test_sort_by_name_and_ascending() -> None:
    assert names({"sortBy": "name", "ascending": "true"}) == ["alpha", "alphabet", "beta", "gamma"]
    assert names({"sortBy": "name"}) == ["gamma", "beta", "alphabet", "alpha"]
    assert names({"ascending": "true"}) == ["alpha", "gamma", "beta", "alphabet"]


def test_paging_counts_everything_before_the_page() -> None:
    q = Query.parse({"sortBy": "name", "ascending": "true", "limit": "3", "page": "2"})
    assert page(ITEMS, q) == {"items": [ITEMS[2]], "totalItems": 4}
    assert page(ITEMS, Query.parse({"limit": "3", "page": "9"}))["items"] == []
    # Garbage numbers fall back to the defaults, as KubeSphere's parser does.
    assert len(page(ITEMS, Query.parse({"limit": "x", "page": "-3"}))["items"]) == 4


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "alpha"}, {"alpha", "alphabet"}),
        ({"names": "alpha,gamma"}, {"alpha", "gamma"}),
        ({"namespace": "a"}, {"alpha", "gamma"}),
        ({"uid": "u1"}, {"alpha"}),
        ({"label": "app=web"}, {"alpha", "gamma"}),
        ({"labelSelector": "app in (web,db),tier!=front"}, {"beta", "gamma"}),
        ({"labelSelector": "!app"}, {"alphabet"}),
        ({"labelSelector": "app"}, {"alpha", "beta", "gamma"}),
        ({"labelSelector": "app notin (web)"}, {"beta", "alphabet"}),
        ({"annotation": "kubesphere.io/alias-name"}, {"alpha"}),
        ({"alias": "First"}, {"alpha"}),
        ({"ownerKind": "ReplicaSet"}, {"beta"}),
        ({"ownerReference": "rs-1"}, {"beta"}),
        ({"name": "a", "namespace": "b"}, {"beta", "alphabet"}),
        ({"colour": "blue"}, set()),
        ({"labelSelector": "app in (web"}, set()),
    ],
)
def test_filters(params: dict[str, str], expected: set[str]) -> None:
    assert set(names(params)) == expected


def test_handler_filters_extend_the_table() -> None:
    q = Query.parse({"email": "x"})
    assert page(ITEMS, q)["totalItems"] == 0
    result = page(ITEMS, q, filters={"email": lambda o, v: o["metadata"]["name"] == "beta"})
    assert [o["metadata"]["name"] for o in result["items"]] == ["beta"]


def test_selector_syntax() -> None:
    assert parse_selector("") == ()
    assert selector_matches("a==1", {"a": "1"})
    assert not selector_matches("a=1", {})
    assert selector_matches("a!=1", {})
    for bad in ("a=1,", "!a=1", "a in (", "=x"):
        with pytest.raises(SelectorError):
            parse_selector(bad)


def test_front_pages_equal_slices_of_the_full_sort() -> None:
    """Small pages are selected, not sorted: the result must be the same slice, ties included."""
    many = [obj(f"n{i % 37:02d}-{i}", f"2026-01-01T00:00:{i % 7:02d}Z", ns=f"ns{i % 3}") for i in range(400)]
    for extra in ({}, {"sortBy": "name"}, {"ascending": "true"}, {"sortBy": "name", "ascending": "true"}):
        everything = page(many, Query.parse(extra))["items"]
        for limit, number in ((5, 1), (7, 3), (10, 9), (50, 2)):
            got = page(many, Query.parse({**extra, "limit": str(limit), "page": str(number)}))
            start = (number - 1) * limit
            assert got == {"items": everything[start : start + limit], "totalItems": 400}, (
                extra,
                limit,
                number,
            )
