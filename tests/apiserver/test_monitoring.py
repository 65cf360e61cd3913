"""The monitoring engine without a cluster: PromQL that a real Prometheus accepts, parameters, ranking.

``test_every_expression_is_valid_promql`` sends every metric of the table, at every scope shape the
routes build, to Debian's Prometheus (an empty one: parsing is what is judged).  The rest is pure
logic: KubeSphere's parameter rules, selectors that a filter cannot break out of, and the ranking
and paging of the console's tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from apiserver.errors import APIError
from apiserver.kapis.monitoring import Query, _matching, go_duration
from apiserver.monitoring import Result, promql, results
from apiserver.monitoring.promql import Scope, expression
from tests.services import PrometheusServer

SCOPES: dict[str, list[Scope]] = {
    "CLUSTER": [Scope("cluster")],
    "NODE": [Scope("node"), Scope("node", node="n1")],
    "WORKSPACE": [Scope("workspace"), Scope("workspace", workspace="w")],
    "NAMESPACE": [Scope("namespace"), Scope("namespace", workspace="w"), Scope("namespace", namespace="n")],
    "WORKLOAD": [
        Scope("workload", namespace="n"),
        Scope("workload", namespace="n", workload_kind="deployment"),
    ],
    "POD": [
        Scope("pod"),
        Scope("pod", namespace="n"),
        Scope("pod", namespace="n", workload_kind="deployment", workload="d"),
        Scope("pod", namespace="n", workload_kind="statefulset", workload="s"),
        Scope("pod", node="x"),
        Scope("pod", node="x", pod="ns1/p1"),
        Scope("pod", namespaced_pods=(("a", "b"), ("c", "d"))),
    ],
    "CONTAINER": [
        Scope("container", namespace="n", pod="p"),
        Scope("container", namespace="n", pod="p", container="c"),
    ],
    "PVC": [
        Scope("pvc", namespace="n"),
        Scope("pvc", namespace="n", pvc="v"),
        Scope("pvc", storageclass="s"),
    ],
    "ETCD": [Scope("component")],
    "APISERVER": [Scope("component")],
    "SCHEDULER": [Scope("component")],
}


@pytest.fixture(scope="module")
def bare_prometheus() -> Iterator[PrometheusServer]:
    with PrometheusServer(interval="1m").start() as server:
        yield server


def test_every_expression_is_valid_promql(bare_prometheus: PrometheusServer) -> None:
    rejected = []
    checked = 0
    for table, scopes in SCOPES.items():
        for name, template in getattr(promql, table).items():
            for scope in scopes:
                expr = expression(template, scope, name)
                assert "<S>" not in expr and "<K>" not in expr, expr
                resp = requests.post(f"{bare_prometheus.url}/api/v1/query", data={"query": expr}, timeout=30)
                checked += 1
                if resp.status_code != 200:
                    rejected.append(f"{name} {scope}: {resp.json().get('error')}")
    assert not rejected, "\n".join(rejected)
    assert checked > 200


def test_the_levels_have_kubesphere_metric_names() -> None:
    assert len(promql.CLUSTER) == 49 and len(promql.NODE) == 34 and len(promql.NAMESPACE) == 27
    assert len(promql.WORKSPACE) == 22 and len(promql.WORKLOAD) == 14 and len(promql.POD) == 5
    assert set(promql.APISERVER) == {
        "apiserver_up_sum", "apiserver_request_rate", "apiserver_request_by_verb_rate",
        "apiserver_request_latencies", "apiserver_request_by_verb_latencies",
    }  # fmt: skip
    assert promql.NAMESPACE["namespace_configmap_count"].startswith("sum by (namespace) (kube_configmap_info")


def test_a_filter_cannot_leave_its_string() -> None:
    scope = Scope("node", resources_filter='a"} or vector(1) or {x="')
    expr = expression(promql.NODE["node_cpu_total"], scope, "node_cpu_total")
    assert expr == r'node:node_num_cpu:sum{node=~"a\"} or vector(1) or {x=\""}'


def test_selectors_follow_the_route() -> None:
    ns = Scope("namespace", namespace="demo")
    assert 'namespace="demo"' in expression(
        promql.NAMESPACE["namespace_pod_count"], ns, "namespace_pod_count"
    )
    ws = Scope("namespace", workspace="w1", resources_filter="a|b$")
    assert 'workspace="w1", namespace=~"a|b$"' in expression(promql.NAMESPACE["namespace_cpu_usage"], ws, "x")
    pods = Scope("pod", namespace="n", workload_kind="deployment", workload="web")
    expr = expression(promql.POD["pod_cpu_usage"], pods, "pod_cpu_usage")
    assert 'kube_pod_owner{owner_kind="ReplicaSet", owner_name=~"^web-[^-]{1,10}$"}' in expr
    assert 'kube_pod_info{pod=~".*", namespace="n"}' in expr
    wl = Scope("workload", namespace="n", workload_kind="statefulset", resources_filter="db")
    expr = expression(promql.WORKLOAD["workload_statefulset_replica"], wl, "workload_statefulset_replica")
    assert 'kube_statefulset_replicas{namespace="n", statefulset!="", statefulset=~"db"}' in expr
    expr = expression(promql.WORKLOAD["workload_cpu_usage"], wl, "workload_cpu_usage")
    assert 'workload=~"StatefulSet:(db)"' in expr


class _Q(dict[str, str]):
    pass


def test_time_parameters_as_kubesphere_reads_them() -> None:
    q = Query(_Q(start="100", end="700", step="600s"))
    assert (q.range, q.start, q.end, q.step) == (True, 100.0, 700.0, 600.0)
    assert Query(_Q(start="1", end="2")).step == 600.0  # 10m by default
    assert Query(_Q(time="42")).time == 42.0 and not Query(_Q(time="42")).range
    for bad, message in (
        (_Q(start="1"), "mutually exclusive"),
        (_Q(start="9", end="1"), "'start' must be before 'end'."),
        (_Q(time="soon"), 'parsing "soon": invalid syntax'),
        (_Q(time="9" * 30), "value out of range"),
        (_Q(start="1", end="2", step="10"), 'invalid duration "10"'),
        (_Q(sort_metric="m", page="0"), "Invalid parameter 'page'."),
        (_Q(sort_metric="m", limit="x"), "Invalid parameter 'limit'."),
    ):
        with pytest.raises(APIError) as err:
            Query(bad)
        assert err.value.code == 400 and message in err.value.message
    assert Query(_Q(page="0")).page == 1  # paging is read only with a ranking


def test_metric_filters_are_re2() -> None:
    """Go's regexp syntax and guarantees: a backtracking pattern stays linear, lookarounds are no syntax."""
    assert _matching(list(promql.CLUSTER), r"(\w+)+!") == []  # exponential for a backtracking engine
    assert _matching(["node_load1", "node_load15"], "node_load1$") == ["node_load1"]
    assert _matching(["node_load1"], "(?=node)") == []  # not RE2: matches nothing, as in KubeSphere


def test_go_durations() -> None:
    assert go_duration("10m") == 600 and go_duration("1h30m") == 5400 and go_duration("1.5s") == 1.5
    assert go_duration("0") == 0 and go_duration("250ms") == 0.25
    for bad in ("", "10", "m", "1d", "1h 30m", ".s"):
        with pytest.raises(APIError):
            go_duration(bad)


def test_a_range_is_clipped_to_the_namespace_lifetime() -> None:
    q = Query(_Q(start="0", end="10000", step="1000s"))
    assert q.clip_to(4500) and q.start == 5000 and q.end == 10000  # the first step after creation
    assert not Query(_Q(start="0", end="100")).clip_to(200)
    exact = Query(_Q(start="0", end="10000", step="1000s"))
    assert exact.clip_to(5000) and exact.start == 6000  # strictly after the creation
    tiny = Query(_Q(start="0", end="4000000000", step="1ns"))  # computed, not stepped back 4e18 times
    assert tiny.clip_to(1) and 1 < tiny.start <= 1 + 1e-6
    assert not Query(_Q(time="100")).clip_to(200) and Query(_Q(time="300")).clip_to(200)


def _vector(rows: dict[str, Any]) -> Result:
    return Result(
        type="vector",
        series=[{"metric": {"node": n}, "value": [1.5, v]} for n, v in rows.items() if v is not None],
    )


def test_answers_have_kubesphere_shapes() -> None:
    item = results.metric("node_load1", _vector({"a": "0.5"}))
    assert item["metric_name"] == "node_load1" and item["data"]["resultType"] == "vector"
    row = item["data"]["result"][0]
    assert row["metric"] == {"node": "a"} and row["value"] == [1.5, "0.5"] and row["min_value"] == ""
    matrix = results.metric(
        "m", Result(type="matrix", series=[{"metric": {}, "values": [[1, "2"], [2, "3"]]}])
    )
    assert matrix["data"]["result"][0]["values"] == [[1, "2"], [2, "3"]]
    assert "metric" not in matrix["data"]["result"][0]
    assert results.metric("m", Result(type="vector", series=[])) == {
        "metric_name": "m",
        "data": {"resultType": "vector"},
    }
    assert results.failed("m", "boom") == {"metric_name": "m", "data": {}, "error": "boom"}


def test_ranking_lines_up_every_metric_and_pages() -> None:
    cpu = results.metric("cpu", _vector({"a": "0.2", "b": "0.9", "c": "NaN", "d": "0.9"}))
    mem = results.metric("mem", _vector({"a": "1", "b": "2", "e": "5"}))
    broken = results.failed("disk", "bad_data: nope")
    body = results.sort_and_page(
        [cpu, mem, broken], target="cpu", identifier="node", descending=True, page=1, limit=3
    )
    assert body["page"] == 1 and body["total_item"] == 5 and body["total_page"] == 2
    order = [r.get("metric", {}).get("node") for r in body["results"][0]["data"]["result"]]
    assert order == ["b", "d", "a"]  # ties by name; NaN after numbers; missing last
    assert [r.get("metric", {}).get("node") for r in body["results"][1]["data"]["result"]] == ["b", None, "a"]
    assert body["results"][2] == broken
    second = results.sort_and_page(
        [cpu, mem], target="cpu", identifier="node", descending=True, page=2, limit=3
    )
    assert [r.get("metric", {}).get("node") for r in second["results"][0]["data"]["result"]] == ["c", None]
    ascending = results.sort_and_page(
        [cpu], target="cpu", identifier="node", descending=False, page=1, limit=9
    )
    values = [r["value"][1] for r in ascending["results"][0]["data"]["result"]]
    assert values[:3] == ["0.2", "0.9", "0.9"] and math.isnan(float(values[3]))
    past = results.sort_and_page([cpu], target="cpu", identifier="node", descending=True, page=9, limit=3)
    assert "result" not in past["results"][0]["data"]
