"""List queries of the /kapis APIs: filters, sorting and paging over cached objects.

KubeSphere's ``query.Query``: ``page`` (1-based) and ``limit`` page the result
(no limit, no paging); ``sortBy`` is ``creationTimestamp`` (default) or
``name``, ``ascending`` defaults to false (newest first); ``labelSelector`` is
a Kubernetes label selector.  Every other parameter is a filter:

* ``name`` (substring), ``names`` (exact, comma-separated), ``uid``,
  ``namespace``, ``ownerReference`` (an owner's uid), ``ownerKind``,
  ``label`` and ``annotation`` (selectors over labels / annotations),
  ``alias`` (substring of ``kubesphere.io/alias-name``);
* per-resource filters a handler passes in (users: ``email``, ...);
* any other key matches nothing, as in KubeSphere.

Unparsable numbers fall back to the defaults, as KubeSphere's parser does.
The result is ``{"items": [...], "totalItems": N}``, N counted before paging.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]
Filter = Callable[[Obj, str], bool]

PAGE, LIMIT, SORT_BY, ASCENDING, LABEL_SELECTOR = "page", "limit", "sortBy", "ascending", "labelSelector"
#: Parameters that are not filters (``pagination`` and the console's cache-buster are ignored).
RESERVED = frozenset({PAGE, LIMIT, SORT_BY, ASCENDING, LABEL_SELECTOR, "pagination", "_", "watch"})
ALIAS_ANNOTATION = "kubesphere.io/alias-name"


class SelectorError(ValueError):
    """A label selector that cannot be parsed."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, Any]) -> bool:
        present = self.key in labels
        value = str(labels.get(self.key, ""))
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        return not present or value not in self.values  # "!=", "notin"


_SET = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\)|(==|!=|=)\s*([^,]*))?\s*$")


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """Label selector syntax: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x)``."""
    terms: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    result = []
    for term in terms:
        if not term.strip():
            if len(terms) == 1:
                return ()
            raise SelectorError(f"empty term in selector {text!r}")
        m = _SET.match(term)
        if not m:
            raise SelectorError(f"cannot parse selector term {term.strip()!r}")
        neg, key, set_op, set_values, op, value = m.groups()
        if neg and (set_op or op):
            raise SelectorError(f"cannot parse selector term {term.strip()!r}")
        if neg:
            result.append(Requirement(key, "!"))
        elif set_op:
            values = tuple(v.strip() for v in set_values.split(",") if v.strip())
            result.append(Requirement(key, set_op, values))
        elif op:
            result.append(Requirement(key, "!=" if op == "!=" else "=", (value.strip(),)))
        else:
            result.append(Requirement(key, "exists"))
    return tuple(result)


def selector_matches(text: str, labels: Mapping[str, Any] | None) -> bool:
    """Whether ``labels`` satisfy the selector (an unparsable selector matches nothing)."""
    try:
        requirements = parse_selector(text)
    except SelectorError:
        return False
    return all(r.matches(labels or {}) for r in requirements)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


@dataclass(frozen=True)
class Query:
    page: int = 1
    limit: int = -1
    sort_by: str = "creationTimestamp"
    ascending: bool = False
    label_selector: str = ""
    filters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Query:
        return cls(
            page=max(_int(params.get(PAGE), 1), 1),
            limit=_int(params.get(LIMIT), -1),
            sort_by=params.get(SORT_BY) or "creationTimestamp",
            ascending=(params.get(ASCENDING) or "").lower() in ("1", "t", "true"),
            label_selector=params.get(LABEL_SELECTOR) or "",
            filters={k: v for k, v in params.items() if k not in RESERVED},
        )


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _owners(obj: Obj) -> list[Mapping[str, Any]]:
    refs = _meta(obj).get("ownerReferences")
    return [r for r in refs if isinstance(r, dict)] if isinstance(refs, list) else []


DEFAULT_FILTERS: dict[str, Filter] = {
    "name": lambda o, v: v in str(_meta(o).get("name") or ""),
    "names": lambda o, v: str(_meta(o).get("name") or "") in {n.strip() for n in v.split(",")},
    "uid": lambda o, v: str(_meta(o).get("uid") or "") == v,
    "namespace": lambda o, v: str(_meta(o).get("namespace") or "") == v,
    "ownerReference": lambda o, v: any(str(r.get("uid")) == v for r in _owners(o)),
    "ownerKind": lambda o, v: any(str(r.get("kind")) == v for r in _owners(o)),
    "label": lambda o, v: selector_matches(v, _meta(o).get("labels")),
    "annotation": lambda o, v: selector_matches(v, _meta(o).get("annotations")),
    "alias": lambda o, v: v in str((_meta(o).get("annotations") or {}).get(ALIAS_ANNOTATION) or ""),
}


def _by_name(obj: Obj) -> tuple[str, str]:
    meta = _meta(obj)
    return str(meta.get("name") or ""), str(meta.get("namespace") or "")


def _by_creation(obj: Obj) -> tuple[str, str]:
    # RFC 3339 in UTC sorts as text; ties by name.
    meta = _meta(obj)
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def run(
    items: Sequence[Obj], query: Query, *, filters: Mapping[str, Filter] | None = None
) -> tuple[list[Obj], int]:
    """Filter, sort and page ``items``; returns (page, total before paging)."""
    table = {**DEFAULT_FILTERS, **(filters or {})}
    checks: list[tuple[Filter, str]] = []
    for key, value in query.filters.items():
        check = table.get(key)
        if check is None:
            return [], 0  # an unknown filter key matches nothing
        checks.append((check, value))
    if query.label_selector:
        selector = query.label_selector
        checks.append((lambda o, v: selector_matches(v, _meta(o).get("labels")), selector))
    kept = [o for o in items if all(check(o, value) for check, value in checks)] if checks else list(items)
    order: Callable[[Obj], tuple[str, str]] = _by_name if query.sort_by == "name" else _by_creation
    total = len(kept)
    if query.limit <= 0:
        kept.sort(key=order, reverse=not query.ascending)
        return kept, total
    start = (query.page - 1) * query.limit
    end = start + query.limit
    if end < total // 4:
        # A page near the front: select it rather than sort everything (same order as a stable sort).
        head = (
            heapq.nsmallest(end, kept, key=order) if query.ascending else heapq.nlargest(end, kept, key=order)
        )
        return head[start:end], total
    kept.sort(key=order, reverse=not query.ascending)
    return kept[start:end], total


def page(
    items: Sequence[Obj], query: Query, *, filters: Mapping[str, Filter] | None = None
) -> dict[str, Any]:
    """``{"items": [...], "totalItems": N}``."""
    kept, total = run(items, query, filters=filters)
    return {"items": list(kept), "totalItems": total}
