"""The console's monitoring calls against a real Prometheus scraping the local cluster.

Prometheus (Debian's, on loopback) scrapes kube-apiserver and kube-scheduler with the cluster's admin
client certificate, etcd, and the ks-apiserver under test (as a platform admin), every second, with
the recording rules the monitoring role installs.  The console's requests are sent as its stores send
them (``metrics_filter`` ending in ``$``, ``step=600s``, ``times=20``, ``sort_metric``/``page``/
``limit``); values are compared with what Prometheus itself answers for the same expression and time.
Without node-exporter and kube-state-metrics the node and workload charts have no series: those calls
are judged on their shape and on Prometheus accepting every expression (no ``error``).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from apiserver.monitoring import promql
from tests.apiserver.conftest import Monitoring, config_doc
from tests.conftest import Cluster
from tests.console.support import call
from tests.helpers import wait_for
from tests.services import RedisServer, free_port

pytestmark = pytest.mark.cluster
MON = "/kapis/monitoring.kubesphere.io/v1alpha3"


def get(mon: Monitoring, path: str, **params: Any) -> dict[str, Any]:
    resp = call(mon.server, "GET", path, mon.token, params=params)
    assert resp.status_code == 200, f"GET {path} {params}: {resp.status_code} {resp.text}"
    body: dict[str, Any] = resp.json()
    return body


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["metric_name"]: r for r in body["results"] or []}


def value(item: dict[str, Any]) -> float:
    return float(item["data"]["result"][0]["value"][1])


@pytest.fixture(scope="module")
def scraped(monitoring: Monitoring) -> Monitoring:
    """Until Prometheus has scraped everything twice and the rules have values (rates need two samples)."""

    def ready() -> bool:
        at = int(time.time()) - 3  # the tests look a few seconds back
        got = by_name(get(monitoring, f"{MON}/components/apiserver", time=at))
        if not all(item["data"].get("result") for item in got.values()):
            return False
        up = get(monitoring, f"{MON}/targets/query", expr='sum(up{job="ks-apiserver"})')["data"].get("result")
        return value(got["apiserver_up_sum"]) == 1 and bool(up and up[0]["value"][1] == "1")

    wait_for(ready, timeout=90, what="Prometheus to scrape the cluster and ks-apiserver", interval=0.5)
    return monitoring


def test_control_plane_metrics_come_from_prometheus(scraped: Monitoring, cluster: Cluster) -> None:
    body = get(scraped, f"{MON}/components/apiserver")
    got = by_name(body)
    assert set(got) == set(promql.APISERVER)
    assert all("error" not in item for item in got.values()), body
    assert value(got["apiserver_up_sum"]) == 1
    assert value(got["apiserver_request_rate"]) >= 0
    core = client.CoreV1Api(cluster.api)

    def busy() -> float:
        core.list_namespace()  # traffic of our own, so the per-second rate cannot stay 0
        rate = by_name(get(scraped, f"{MON}/components/apiserver", metrics_filter="apiserver_request_rate$"))
        return value(rate["apiserver_request_rate"])

    assert wait_for(busy, timeout=30, what="kube-apiserver's request rate to show requests") > 0
    verbs = {row["metric"]["verb"] for row in got["apiserver_request_by_verb_rate"]["data"]["result"]}
    assert {"GET", "LIST", "WATCH"} & verbs
    etcd = by_name(
        get(scraped, f"{MON}/components/etcd", metrics_filter="etcd_server_has_leader|etcd_server_up_total$")
    )
    leader = etcd["etcd_server_has_leader"]["data"]["result"][0]
    assert leader["metric"]["node_ip"] == "127.0.0.1" and leader["value"][1] == "1"
    assert value(etcd["etcd_server_up_total"]) == 1
    sched = by_name(get(scraped, f"{MON}/components/scheduler", metrics_filter="scheduler_up_sum$"))
    assert value(sched["scheduler_up_sum"]) == 1


def test_values_are_prometheus_own(scraped: Monitoring) -> None:
    """The same expression at the same time gives the same samples through ks-apiserver as straight."""
    at = str(int(time.time()) - 2)
    expr = "apiserver:apiserver_request_total:sum_verb_irate"
    through = get(
        scraped, f"{MON}/components/apiserver", metrics_filter="apiserver_request_by_verb_rate$", time=at
    )
    rows = by_name(through)["apiserver_request_by_verb_rate"]["data"]["result"]
    direct = scraped.prometheus_query(expr, time=at)["result"]
    assert {r["metric"]["verb"]: r["value"] for r in rows} == {
        r["metric"]["verb"]: r["value"] for r in direct
    }
    ours = get(scraped, f"{MON}/targets/query", expr='up{job="ks-apiserver"}', time=at)
    assert ours["data"]["resultType"] == "vector"
    assert ours["data"]["result"][0]["metric"]["job"] == "ks-apiserver"
    assert (
        ours["data"]["result"][0]["value"]
        == scraped.prometheus_query('up{job="ks-apiserver"}', time=at)["result"][0]["value"]
    )


def test_range_query_as_the_console_sends_it(scraped: Monitoring) -> None:
    end = int(time.time())
    body = get(
        scraped,
        f"{MON}/components/apiserver",
        metrics_filter="apiserver_up_sum|apiserver_request_rate$",
        start=end - 20,
        end=end,
        step="2s",
        times=10,
    )
    got = by_name(body)
    up = got["apiserver_up_sum"]["data"]
    assert up["resultType"] == "matrix"
    points = up["result"][0]["values"]
    stamps = [p[0] for p in points]
    assert len(points) >= 2 and all(b - a == 2 for a, b in itertools.pairwise(stamps))
    assert all(end - 20 <= s <= end for s in stamps) and {p[1] for p in points} == {"1"}
    assert got["apiserver_request_rate"]["data"]["resultType"] == "matrix"


def test_unknown_metric_names_and_components(scraped: Monitoring) -> None:
    assert get(scraped, f"{MON}/cluster", metrics_filter="no_such_metric$") == {"results": None}
    assert get(scraped, f"{MON}/components/nosuch") == {"results": None}
    assert get(scraped, f"{MON}/cluster", metrics_filter="(unclosed") == {"results": None}
    bad = get(scraped, f"{MON}/targets/query", expr="sum(")
    assert bad["data"] == {} and bad["error"].startswith("bad_data:")


def test_dashboard_workspace_and_project_overview_calls(scraped: Monitoring, cluster: Cluster) -> None:
    """The cluster dashboard, node ranking, workspace overview and project overview requests."""
    end = int(time.time())
    window = {"start": end - 12000, "end": end, "step": "600s", "times": 20}
    cluster_metrics = (
        "cluster_cpu_usage|cluster_memory_usage_wo_cache|cluster_pod_running_count|cluster_node_total"
    )
    body = get(scraped, f"{MON}/cluster", metrics_filter=cluster_metrics + "$", **window)
    assert set(by_name(body)) == set(cluster_metrics.split("|"))
    assert all(r["data"]["resultType"] == "matrix" and "error" not in r for r in body["results"])
    ranked = get(
        scraped,
        f"{MON}/nodes",
        metrics_filter="node_cpu_utilisation|node_memory_utilisation$",
        sort_metric="node_cpu_utilisation",
        sort_type="desc",
        page=1,
        limit=5,
    )
    assert ranked["page"] == 1 and {r["metric_name"] for r in ranked["results"]} == {
        "node_cpu_utilisation",
        "node_memory_utilisation",
    }
    platform = by_name(get(scraped, f"{MON}/kubesphere"))
    users = client.CustomObjectsApi(cluster.api).list_cluster_custom_object(
        "iam.kubesphere.io", "v1alpha2", "users"
    )
    assert value(platform["kubesphere_user_count"]) == len(users["items"])
    assert value(platform["kubesphere_cluser_count"]) == 1


@pytest.fixture
def workspace(cluster: Cluster) -> Iterator[tuple[str, str]]:
    """A workspace with one project, one role and one member binding, made straight in the cluster."""
    custom, core = client.CustomObjectsApi(cluster.api), client.CoreV1Api(cluster.api)
    tag = uuid.uuid4().hex[:6]
    ws, ns = f"mws-{tag}", f"mns-{tag}"
    label = {"kubesphere.io/workspace": ws}
    iam = ("iam.kubesphere.io", "v1alpha2")
    custom.create_cluster_custom_object(
        "tenant.kubesphere.io",
        "v1alpha2",
        "workspacetemplates",
        {
            "apiVersion": "tenant.kubesphere.io/v1alpha2",
            "kind": "WorkspaceTemplate",
            "metadata": {"name": ws},
        },
    )
    core.create_namespace({"metadata": {"name": ns, "labels": label}})
    role = {
        "apiVersion": "iam.kubesphere.io/v1alpha2",
        "kind": "WorkspaceRole",
        "metadata": {"name": f"{ws}-x", "labels": label},
        "rules": [],
    }
    custom.create_cluster_custom_object(*iam, "workspaceroles", role)
    binding = {
        "apiVersion": "iam.kubesphere.io/v1alpha2",
        "kind": "WorkspaceRoleBinding",
        "metadata": {"name": f"{ws}-b", "labels": {**label, "iam.kubesphere.io/user-ref": "nobody"}},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "nobody"}],
        "roleRef": {"apiGroup": "iam.kubesphere.io", "kind": "WorkspaceRole", "name": f"{ws}-x"},
    }
    custom.create_cluster_custom_object(*iam, "workspacerolebindings", binding)
    try:
        yield ws, ns
    finally:
        for plural, name in (("workspacerolebindings", f"{ws}-b"), ("workspaceroles", f"{ws}-x")):
            custom.delete_cluster_custom_object(*iam, plural, name)
        custom.delete_cluster_custom_object("tenant.kubesphere.io", "v1alpha2", "workspacetemplates", ws)
        core.delete_namespace(ns)


def test_workspace_statistics_and_project_lifetime(scraped: Monitoring, workspace: tuple[str, str]) -> None:
    ws, ns = workspace

    def counts() -> dict[str, float] | None:
        got = {
            k: value(v) for k, v in by_name(get(scraped, f"{MON}/workspaces/{ws}", type="statistics")).items()
        }
        return got if got["workspace_namespace_count"] == 1 and got["workspace_member_count"] == 1 else None

    got = wait_for(counts, timeout=20, what="the workspace's objects in ks-apiserver's caches")
    assert got == {
        "workspace_namespace_count": 1,
        "workspace_devops_project_count": 0,
        "workspace_member_count": 1,
        "workspace_role_count": 1,
    }
    project = get(
        scraped, f"{MON}/namespaces/{ns}", metrics_filter="namespace_pod_count|namespace_cpu_usage$"
    )
    # The filter is a search, as in KubeSphere: only the last alternative is anchored by the console's `$`.
    assert {r["metric_name"] for r in project["results"]} == {
        "namespace_pod_count", "namespace_pod_count_hard", "namespace_cpu_usage",
    }  # fmt: skip
    assert all("error" not in r for r in project["results"])
    # Before the project existed nothing can be known: every metric of the level, empty.
    before = get(
        scraped,
        f"{MON}/namespaces/{ns}",
        time=int(time.time()) - 86400,
        metrics_filter="namespace_pod_count$",
    )
    assert [r["metric_name"] for r in before["results"]] == list(promql.NAMESPACE)
    assert all(r["data"] == {} for r in before["results"])
    missing = call(scraped.server, "GET", f"{MON}/namespaces/no-such-ns-{ws}", scraped.token)
    assert missing.status_code == 404
    projects = get(scraped, f"{MON}/workspaces/{ws}/namespaces", metrics_filter="namespace_pod_count$")
    assert [r["metric_name"] for r in projects["results"]] == ["namespace_pod_count"]


def test_bad_parameters_are_400(scraped: Monitoring) -> None:
    for params in (
        {"start": "1"},
        {"start": "9", "end": "1"},
        {"time": "noon"},
        {"start": "1", "end": "2", "step": "5"},
    ):
        resp = call(scraped.server, "GET", f"{MON}/cluster", scraped.token, params=params)
        assert resp.status_code == 400, (params, resp.text)
    resp = call(
        scraped.server, "GET", f"{MON}/nodes", scraped.token, params={"sort_metric": "x", "page": "-1"}
    )
    assert resp.status_code == 400 and resp.text == "Invalid parameter 'page'.\n"


def test_prometheus_down_is_an_error_per_metric(
    start_apiserver: Any, redis_server: RedisServer, monitoring: Monitoring
) -> None:
    """A Prometheus that cannot be reached: 200, and every metric says why (the console shows it)."""
    nowhere = f"http://user:secret@127.0.0.1:{free_port()}"
    server = start_apiserver(doc=config_doc(redis_server, extra={"monitoring": {"endpoint": nowhere}}))
    token = server.login(monitoring.admin, monitoring.password)
    for path, params in (
        (f"{MON}/cluster", {"metrics_filter": "cluster_cpu_usage|cluster_pod_count$"}),
        (f"{MON}/components/apiserver", {"start": "1", "end": "100", "step": "10s"}),
        (f"{MON}/nodes", {"sort_metric": "node_cpu_utilisation", "limit": "3"}),
    ):
        resp = call(server, "GET", path, token, params=params)
        assert resp.status_code == 200, resp.text
        items = resp.json()["results"]
        assert items and all(i["data"] == {} and "connection refused" in i["error"].lower() for i in items), (
            items
        )
        assert all("secret" not in i["error"] for i in items)
