"""KubeSphere's monitoring answer: ``{"results": [{metric_name, data: {resultType, result}, error}]}``.

Each series becomes a ``MetricValue``: ``metric`` (its labels, left out when
there are none), ``value`` ``[seconds, "number"]`` for a vector or ``values``
(a list of them) for a matrix, and the metering fields KubeSphere always writes
(``min_value`` ... ``currency_unit``, empty here).  A metric whose query failed
is ``{"metric_name", "data": {}, "error"}``; the others are unaffected.

``sort_and_page`` ranks the objects of an instant answer by one metric and cuts
every metric to the same page, as the console's ranking tables expect: rows
of different metrics line up by the object's name (``identifier``), an object
missing from a metric gets an empty row, NaN and missing values go last, ties
are broken by name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from apiserver.monitoring.prometheus import Result

VECTOR, MATRIX = "vector", "matrix"
METERING_FIELDS = (
    "min_value",
    "max_value",
    "avg_value",
    "sum_value",
    "fee",
    "resource_unit",
    "currency_unit",
)
Metric = dict[str, Any]


def _row(labels: dict[str, str] | None, **points: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"metric": labels} if labels else {}
    row.update({k: v for k, v in points.items() if v is not None})
    row.update(dict.fromkeys(METERING_FIELDS, ""))
    return row


def _point(raw: Any) -> list[Any] | None:
    if isinstance(raw, list) and len(raw) == 2:
        return [raw[0], str(raw[1])]
    return None


def metric(name: str, result: Result, *, keep: Iterable[tuple[str, str]] | None = None) -> Metric:
    """One metric's entry from a Prometheus answer; ``keep`` limits it to those (namespace, pod) pairs."""
    wanted = set(keep) if keep is not None else None
    rows = []
    for series in result.series:
        raw = series.get("metric")
        labels: dict[str, str] = raw if isinstance(raw, dict) else {}
        if wanted is not None and (labels.get("namespace", ""), labels.get("pod", "")) not in wanted:
            continue
        if result.type == MATRIX:
            points = [p for p in (_point(v) for v in series.get("values") or []) if p is not None]
            rows.append(_row(labels, values=points or None))
        else:
            rows.append(_row(labels, value=_point(series.get("value"))))
    data: dict[str, Any] = {"resultType": MATRIX if result.type == MATRIX else VECTOR}
    if rows:
        data["result"] = rows
    return {"metric_name": name, "data": data}


def failed(name: str, error: str) -> Metric:
    return {"metric_name": name, "data": {}, "error": error}


def empty(name: str) -> Metric:
    """A metric with no data at all (a namespace that did not exist at the time asked)."""
    return {"metric_name": name, "data": {}}


def sample(name: str, value: float, at: float) -> Metric:
    """A one-sample vector with no labels: KubeSphere's counts of platform objects."""
    return {
        "metric_name": name,
        "data": {"resultType": VECTOR, "result": [_row(None, value=[at, _number(value)])]},
    }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _value(row: dict[str, Any]) -> float | None:
    point = row.get("value")
    if not point:
        return None
    try:
        return float(point[1])
    except (TypeError, ValueError):
        return math.nan


def _rank_key(row: dict[str, Any], identifier: str, descending: bool) -> tuple[int, float, str]:
    value = _value(row)
    name = (row.get("metric") or {}).get(identifier, "")
    if value is None:
        return (2, 0.0, name)
    if math.isnan(value):
        return (1, 0.0, name)
    return (0, -value if descending else value, name)


def _rankable(item: Metric) -> bool:
    return "error" not in item and item.get("data", {}).get("resultType") == VECTOR


def sort_and_page(
    results: Sequence[Metric], *, target: str, identifier: str, descending: bool, page: int, limit: int
) -> dict[str, Any]:
    order: dict[str, int] = {}
    names: set[str] = set()
    for item in results:
        if not _rankable(item):
            continue
        rows = item["data"].get("result") or []
        if item["metric_name"] == target:
            for row in sorted(rows, key=lambda r: _rank_key(r, identifier, descending)):
                name = (row.get("metric") or {}).get(identifier)
                if name and name not in order:
                    order[name] = len(order)
        names.update(n for n in ((r.get("metric") or {}).get(identifier) for r in rows) if n)
    for name in sorted(names - order.keys()):
        order[name] = len(order)
    total = len(order)
    start, end = (page - 1) * limit, page * limit
    shaped = []
    for item in results:
        if not _rankable(item):
            shaped.append(item)
            continue
        lined: list[dict[str, Any]] = [_row(None) for _ in range(total)]
        for row in item["data"].get("result") or []:
            name = (row.get("metric") or {}).get(identifier)
            if name:
                lined[order[name]] = row
        window = lined[start:end] if start < total else []
        data = {"resultType": VECTOR, **({"result": window} if window else {})}
        shaped.append({**item, "data": data})
    body: dict[str, Any] = {"results": shaped, "page": page, "total_page": math.ceil(total / limit)}
    if total:
        body["total_item"] = total
    return {k: v for k, v in body.items() if v or k == "results"}
