"""/kapis/resources.kubesphere.io/v1alpha3: generic list and get from watch-backed caches, with queries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.apiserver.conftest import ApiServer
from tests.apiserver.kapis_support import RESOURCES, World, call
from tests.conftest import Cluster
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def world(platform_crds: Cluster, apiserver: ApiServer) -> Iterator[World]:
    w = World(platform_crds, apiserver)
    try:
        ns = w.names["ns"] = w.namespace("rsns", None)
        owner = None
        for i, (name, tier) in enumerate([("web-a", "front"), ("web-b", "front"), ("db", "back")]):
            meta: dict[str, Any] = {
                "name": name,
                "labels": {"tier": tier, "idx": str(i)},
                "annotations": {"note": "kept" if tier == "back" else "x"},
            }
            if owner is not None and name == "db":
                meta["ownerReferences"] = [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "web-a", "uid": owner.metadata.uid}
                ]
            made = w.core.create_namespaced_config_map(ns, {"metadata": meta, "data": {"k": "v"}})
            owner = owner or made
            time.sleep(1.1)  # distinct creationTimestamps (second resolution) for the sort checks
        w.role = w.rbac.create_namespaced_role(
            ns,
            {  # type: ignore[attr-defined]
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
            },
        )
        w.user("admin", globalrole="platform-admin")
        w.user("viewer")
        w.user("podreader")
        w.user("nobody")
        w.namespace_member(w.users["viewer"], ns, "viewer")
        w.namespace_member(w.users["podreader"], ns, "pod-reader")
        w.until("podreader", "GET", f"/api/v1/namespaces/{ns}/pods", 200)
        w.until("viewer", "GET", f"/api/v1/namespaces/{ns}/configmaps", 200)
        yield w
    finally:
        w.close()


def cms(world: World, who: str = "admin", **params: str) -> dict[str, Any]:
    path = f"{RESOURCES}/namespaces/{world.names['ns']}/configmaps"
    resp = call(world.server, "GET", path, token=world.tokens[who], params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def ours(body: dict[str, Any]) -> list[str]:
    return [o["metadata"]["name"] for o in body["items"] if o["metadata"]["name"] != "kube-root-ca.crt"]


def test_list_shape_default_sort_and_paging(world: World) -> None:
    wait_for(lambda: len(ours(cms(world))) == 3, timeout=20, what="the configmaps in the cache")
    body = cms(world, label="tier")
    assert set(body) == {"items", "totalItems"}
    assert ours(body) == ["db", "web-b", "web-a"]  # newest first
    assert body["totalItems"] == 3
    assert ours(cms(world, label="tier", ascending="true")) == ["web-a", "web-b", "db"]
    assert ours(cms(world, label="tier", sortBy="name", ascending="true")) == ["db", "web-a", "web-b"]
    assert ours(cms(world, label="tier", sortBy="name")) == ["web-b", "web-a", "db"]
    page = cms(world, label="tier", sortBy="name", ascending="true", limit="2", page="2")
    assert (ours(page), page["totalItems"]) == (["web-b"], 3)
    assert cms(world, label="tier", limit="2", page="5")["items"] == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"name": "web"}, {"web-a", "web-b"}),
        ({"names": "db,web-a"}, {"db", "web-a"}),
        ({"label": "tier=front"}, {"web-a", "web-b"}),
        ({"labelSelector": "tier in (back),idx!=0"}, {"db"}),
        ({"labelSelector": "tier,!missing"}, {"web-a", "web-b", "db"}),
        ({"annotation": "note=kept"}, {"db"}),
        ({"ownerKind": "ConfigMap"}, {"db"}),
        ({"name": "web", "label": "idx=1"}, {"web-b"}),
        ({"unknownfilter": "1"}, set()),
    ],
)
def test_filters(world: World, params: dict[str, str], expected: set[str]) -> None:
    wait_for(lambda: len(ours(cms(world))) == 3, timeout=20, what="the configmaps in the cache")
    assert set(ours(cms(world, **params))) == expected


def test_owner_reference_filter(world: World) -> None:
    uid = world.core.read_namespaced_config_map("web-a", world.names["ns"]).metadata.uid
    assert ours(cms(world, ownerReference=uid)) == ["db"]


def test_get_one_and_not_found(world: World) -> None:
    ns = world.names["ns"]
    token = world.tokens["admin"]
    resp = call(world.server, "GET", f"{RESOURCES}/namespaces/{ns}/configmaps/web-a", token=token)
    assert resp.status_code == 200 and resp.json()["data"] == {"k": "v"}
    missing = call(world.server, "GET", f"{RESOURCES}/namespaces/{ns}/configmaps/nope", token=token)
    assert (missing.status_code, missing.text) == (404, 'configmaps "nope" not found\n')
    assert call(world.server, "GET", f"{RESOURCES}/no-such-things", token=token).status_code == 404
    assert call(world.server, "GET", f"{RESOURCES}/namespaces/{ns}/nodes", token=token).status_code == 404
    got = call(world.server, "GET", f"{RESOURCES}/namespaces/{ns}", token=token)
    assert got.status_code == 200 and got.json()["metadata"]["name"] == ns
    crds = call(world.server, "GET", f"{RESOURCES}/workspacetemplates", token=token)
    assert crds.status_code == 200 and "totalItems" in crds.json()


def test_changes_arrive_through_the_watch(world: World) -> None:
    ns = world.names["ns"]
    world.core.create_namespaced_config_map(ns, {"metadata": {"name": "late", "labels": {"late": "1"}}})
    wait_for(lambda: ours(cms(world, label="late")) == ["late"], timeout=20, what="the new configmap listed")
    world.core.delete_namespaced_config_map("late", ns)
    wait_for(lambda: ours(cms(world, label="late")) == [], timeout=20, what="the deleted configmap gone")


def test_authorization_is_of_the_real_resource(world: World) -> None:
    ns = world.names["ns"]
    assert set(ours(cms(world, "viewer"))) == {"web-a", "web-b", "db"}
    reader = world.tokens["podreader"]
    assert call(world.server, "GET", f"{RESOURCES}/namespaces/{ns}/pods", token=reader).status_code == 200
    denied = call(world.server, "GET", f"{RESOURCES}/namespaces/{ns}/configmaps", token=reader)
    assert denied.status_code == 403
    assert denied.json()["message"] == (
        f'configmaps is forbidden: User "{world.users["podreader"]}" cannot list resource "configmaps" '
        f'in API group "" in the namespace "{ns}"'
    )
    assert call(world.server, "GET", f"{RESOURCES}/pods", token=reader).status_code == 403
    nobody = world.tokens["nobody"]
    assert (
        call(world.server, "GET", f"{RESOURCES}/namespaces/{ns}/configmaps/web-a", token=nobody).status_code
        == 403
    )
    assert call(world.server, "GET", f"{RESOURCES}/namespaces/{ns}/configmaps", token=None).status_code == 403
