"""Reading kubectl's protobuf reviews, and which discovery paths every authenticated user may read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apiserver import selfreview
from apiserver.requestinfo import resolve
from apiserver.rules import is_discovery


def _field(number: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def _access_review(**attrs: str) -> bytes:
    numbers = {
        "namespace": 1,
        "verb": 2,
        "group": 3,
        "version": 4,
        "resource": 5,
        "subresource": 6,
        "name": 7,
    }
    resource_attributes = b"".join(_field(numbers[k], v.encode()) for k, v in attrs.items())
    review = _field(1, b"") + _field(2, _field(1, resource_attributes))
    unknown = _field(1, _field(1, b"authorization.k8s.io/v1")) + _field(2, review)
    return selfreview.PROTOBUF_MAGIC + unknown


def test_protobuf_access_review_as_kubectl_sends_it() -> None:
    raw = _access_review(namespace="ns1", verb="create", resource="pods", subresource="exec")
    assert selfreview.from_protobuf(raw, path=selfreview.ACCESS) == {
        "spec": {
            "resourceAttributes": {
                "namespace": "ns1",
                "verb": "create",
                "resource": "pods",
                "subresource": "exec",
            }
        }
    }


def test_protobuf_rules_review_names_its_namespace() -> None:
    review = _field(2, _field(1, b"ns2"))
    raw = selfreview.PROTOBUF_MAGIC + _field(2, review)
    assert selfreview.from_protobuf(raw, path=selfreview.RULES) == {"spec": {"namespace": "ns2"}}


@given(st.binary(max_size=200))
def test_any_bytes_are_read_or_refused_with_value_error(junk: bytes) -> None:
    for path in (selfreview.ACCESS, selfreview.RULES, selfreview.WHOAMI[0]):
        try:
            result = selfreview.from_protobuf(selfreview.PROTOBUF_MAGIC + junk, path=path)
        except ValueError:
            continue
        assert isinstance(result["spec"], dict)


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api", True), ("/api/v1", True), ("/apis", True), ("/apis/apps", True), ("/apis/apps/v1", True),
        ("/openapi/v3", True), ("/openapi/v3/apis/apps/v1", True), ("/version", True),
        ("/api/v1/namespaces", False), ("/apis/apps/v1/deployments", False), ("/api/v1//secrets", False),
        ("/apis/apps/v1/../../../api/v1/secrets", False), ("/metrics", False), ("/", False),
    ],
)  # fmt: skip
def test_discovery_paths(path: str, allowed: bool) -> None:
    assert is_discovery(path) is allowed


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("sub", ["exec", "attach", "portforward"])
def test_pod_streams_are_create_whatever_the_method(method: str, sub: str) -> None:
    info = resolve(method, f"/api/v1/namespaces/ns1/pods/p1/{sub}", {})
    assert (info.verb, info.resource, info.subresource, info.name) == ("create", "pods", sub, "p1")
    assert resolve("GET", "/api/v1/namespaces/ns1/pods/p1/log", {}).verb == "get"
