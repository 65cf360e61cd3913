"""apiserver.kube against the local cluster: JSON calls, errors, discovery and informers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from apiserver import kube
from apiserver.informers import _Gone
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster


def run(cluster: Cluster, body: Callable[[kube.KubeClient], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        client = kube.KubeClient.from_kubeconfig(cluster.kubeconfig)
        try:
            return await body(client)
        finally:
            await client.close()

    return asyncio.run(go())


async def eventually(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}


def test_crud_patch_types_and_errors(cluster: Cluster, namespace: str) -> None:
    async def body(client: kube.KubeClient) -> None:
        created = await client.create(kube.CONFIGMAPS, cm("one"), namespace=namespace)
        assert created["metadata"]["namespace"] == namespace
        merged = await client.patch(kube.CONFIGMAPS, "one", {"data": {"a": "1"}}, namespace=namespace)
        assert merged["data"] == {"k": "v", "a": "1"}
        jsonp = await client.patch(
            kube.CONFIGMAPS,
            "one",
            [{"op": "remove", "path": "/data/k"}],
            namespace=namespace,
            patch_type="json",
        )
        assert jsonp["data"] == {"a": "1"}
        strategic = await client.patch(
            kube.CONFIGMAPS, "one", {"data": {"b": "2"}}, namespace=namespace, patch_type="strategic"
        )
        assert strategic["data"] == {"a": "1", "b": "2"}
        strategic["data"] = {"only": "this"}
        replaced = await client.replace(kube.CONFIGMAPS, strategic, namespace=namespace)
        assert replaced["data"] == {"only": "this"}
        assert (await client.get(kube.CONFIGMAPS, "one", namespace=namespace))["data"] == {"only": "this"}
        with pytest.raises(kube.KubeError) as conflict:
            await client.create(kube.CONFIGMAPS, cm("one"), namespace=namespace)
        assert conflict.value.status == 409 and conflict.value.body["reason"] == "AlreadyExists"
        assert not conflict.value.temporary
        await client.delete(kube.CONFIGMAPS, "one", namespace=namespace)
        with pytest.raises(kube.KubeError) as missing:
            await client.get(kube.CONFIGMAPS, "one", namespace=namespace)
        assert missing.value.status == 404
        assert missing.value.message == 'configmaps "one" not found'
        listed = await client.list(kube.CONFIGMAPS, namespace=namespace)
        assert all(item["kind"] == "ConfigMap" for item in listed)

    run(cluster, body)


def test_discovery_resolves_plural_names(platform_crds: Cluster) -> None:
    async def body(client: kube.KubeClient) -> None:
        assert await client.resolve("deployments") == kube.DEPLOYMENTS
        assert await client.resolve("users", group="iam.kubesphere.io") == kube.USERS
        assert await client.resolve("pods") == kube.PODS
        assert await client.resolve("no-such-things") is None

    run(platform_crds, body)


def test_unreachable_server_is_a_temporary_error(cluster: Cluster) -> None:
    async def go() -> None:
        client = kube.KubeClient("http://127.0.0.1:1", ssl_context=False, auth=lambda: None)
        with pytest.raises(kube.KubeUnavailable) as err:
            await client.list(kube.NAMESPACES)
        assert err.value.temporary and err.value.status == 503
        await client.close()

    asyncio.run(go())


def test_informer_follows_changes_and_answers_from_label_indexes(cluster: Cluster, namespace: str) -> None:
    ws = f"ws-{uuid.uuid4().hex[:6]}"

    async def body(client: kube.KubeClient) -> None:
        await client.create(kube.CONFIGMAPS, cm("before", **{kube.WORKSPACE_LABEL: ws}), namespace=namespace)
        caches = kube.Caches(client, [kube.CONFIGMAPS])
        events: list[tuple[str, str]] = []
        caches[kube.CONFIGMAPS].add_listener(lambda kind, obj: events.append((kind, obj["metadata"]["name"])))
        await caches.start()
        assert await caches.wait_synced(timeout=20) and caches.synced()
        inf = caches[kube.CONFIGMAPS]
        assert inf.get("before", namespace=namespace) is not None
        await client.create(
            kube.CONFIGMAPS, cm("after", **{kube.WORKSPACE_LABEL: ws, "x": "1"}), namespace=namespace
        )
        await client.create(kube.CONFIGMAPS, cm("other", x="1"), namespace=namespace)
        await eventually(lambda: len(inf.list(namespace=namespace)) >= 3, "the new configmaps")
        in_ws = {o["metadata"]["name"] for o in inf.list(labels={kube.WORKSPACE_LABEL: ws})}
        assert in_ws == {"before", "after"}
        both = inf.list(namespace=namespace, labels={kube.WORKSPACE_LABEL: ws, "x": "1"})
        assert [o["metadata"]["name"] for o in both] == ["after"]
        assert "managedFields" not in inf.get("after", namespace=namespace)["metadata"]
        await client.patch(kube.CONFIGMAPS, "after", {"metadata": {"labels": {kube.WORKSPACE_LABEL: None}}},
                           namespace=namespace)  # fmt: skip
        await eventually(
            lambda: len(inf.list(labels={kube.WORKSPACE_LABEL: ws})) == 1, "the label index update"
        )
        await client.delete(kube.CONFIGMAPS, "before", namespace=namespace)
        await eventually(lambda: inf.get("before", namespace=namespace) is None, "the deletion")
        assert ("MODIFIED", "after") in events and ("DELETED", "before") in events
        assert inf.relists == 1
        await caches.stop()

    run(cluster, body)


def test_watch_resumes_without_relisting_and_relists_after_a_gap(cluster: Cluster, namespace: str) -> None:
    async def body(client: kube.KubeClient) -> None:
        inf = kube.Informer(client, kube.CONFIGMAPS, watch_timeout=(1, 1))
        inf.start()
        await asyncio.wait_for(inf.synced.wait(), 20)
        await eventually(lambda: inf.watches >= 3, "the server to end two watches", timeout=15)
        await client.create(kube.CONFIGMAPS, cm("late"), namespace=namespace)
        await eventually(
            lambda: inf.get("late", namespace=namespace) is not None, "an event after reconnects"
        )
        assert inf.relists == 1  # resumed from the last resourceVersion each time

        # While stopped, an object goes away; the next start lists again and notices.
        await inf.stop()
        events: list[tuple[str, str]] = []
        inf.add_listener(lambda kind, obj: events.append((kind, obj["metadata"]["name"])))
        await client.delete(kube.CONFIGMAPS, "late", namespace=namespace)
        inf.start()
        await eventually(lambda: inf.relists == 2, "the relist")
        assert inf.get("late", namespace=namespace) is None and ("DELETED", "late") in events
        await inf.stop()

        # An expired resourceVersion arrives as an ERROR event with code 410 ...
        with pytest.raises(_Gone):
            inf._apply({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}})
        # ... and the loop answers it with a fresh list, then watches on.
        gone = kube.Informer(client, kube.CONFIGMAPS)
        real_watch = gone._watch
        calls = 0

        async def expired_once() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                gone._apply({"type": "ERROR", "object": {"kind": "Status", "code": 410}})
            await real_watch()

        gone._watch = expired_once  # type: ignore[method-assign]
        gone.start()
        await eventually(lambda: gone.relists == 2 and calls == 2, "a relist after 410")
        await client.create(kube.CONFIGMAPS, cm("after-gone"), namespace=namespace)
        await eventually(
            lambda: gone.get("after-gone", namespace=namespace) is not None, "events after relist"
        )
        await gone.stop()

    run(cluster, body)


def test_missing_crd_is_empty_and_synced(cluster: Cluster) -> None:
    ghost = kube.Resource(
        group="ghost.example.com", version="v1", plural="ghosts", kind="Ghost", namespaced=False
    )

    async def body(client: kube.KubeClient) -> None:
        caches = kube.Caches(client, [ghost])
        await caches.start()
        assert await caches.wait_synced(timeout=10)
        assert caches[ghost].list() == []
        with pytest.raises(KeyError):
            caches[kube.PODS]
        pods = await caches.informer(kube.PODS)
        assert pods.synced.is_set()
        await caches.stop()

    run(cluster, body)
