"""Fuzz the running ks-apiserver against its own OpenAPI document (schemathesis).

Every operation in the document gets a few generated requests (valid and
invalid parameters and bodies), once as an anonymous caller and once as a
platform-regular user with no other bindings (and every read once more as a
platform admin, for the handlers' own code paths).  Two things must hold:

* no 5xx, ever;
* no 2xx where the RBAC table says the caller may not act.  The table is
  written here by hand from the built-in roles, not computed by the server's
  authorizer: anonymous callers may read configs, versions and the document;
  a regular user additionally lists users, does anything to their own user,
  reads their own memberships and reads the tenant API (whose lists must then
  be empty for them).

The monitoring and overview routes are fuzzed once more against a ks-apiserver whose
``monitoring.endpoint`` is a real Prometheus (``monitoring`` fixture), as a platform admin, so
generated filters, times and steps reach Prometheus: its refusals must come back as a
metric's ``error`` or a 400, never a 5xx.

``/oauth/logout`` is left out (it would revoke the fuzzing user's token), and
redirects are not followed (``/oauth/authorize`` redirects wherever a client
allows).  The reviews of oneself that ks-apiserver answers instead of proxying
(``selfsubjectaccessreviews``, ``selfsubjectrulesreviews``,
``selfsubjectreviews``) are fuzzed from a small document of their own.
Bounded by ``MAX_EXAMPLES`` per operation.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from apiserver import kapis
from tests.apiserver.conftest import ApiServer, Monitoring, unique
from tests.apiserver.kapis_support import PASSWORD

pytestmark = pytest.mark.cluster

MAX_EXAMPLES = 6
SCHEMA = schemathesis.openapi.from_dict(kapis.document()).exclude(path="/oauth/logout")
PUBLIC = re.compile(r"^(/kapis/config\.kubesphere\.io/.*|/kapis/version|/version|/openapi\.json|/docs)$")
TENANT_READ = re.compile(r"^/kapis/tenant\.kubesphere\.io/")
USERS = "/kapis/iam.kubesphere.io/v1alpha2/users"
KUBECONFIG = "/kapis/resources.kubesphere.io/v1alpha2/users/{}/kubeconfig"
_ATTRIBUTES = {"type": "object", "additionalProperties": {"type": "string"}}
_REVIEW = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "spec": {
            "type": "object",
            "properties": {
                "resourceAttributes": _ATTRIBUTES,
                "nonResourceAttributes": _ATTRIBUTES,
                "namespace": {"type": "string"},
            },
        },
    },
}
SELF_REVIEWS = schemathesis.openapi.from_dict(
    {
        "openapi": "3.0.3",
        "info": {"title": "self reviews", "version": "v1"},
        "paths": {
            path: {
                "post": {
                    "operationId": path,
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _REVIEW}}},
                    "responses": {"201": {"description": "the review, answered"}},
                }
            }
            for path in (
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            )
        },
    }
)


def may(who: str, method: str, path: str) -> bool:
    """Whether the RBAC table lets ``who`` ("anonymous", or the regular user's name) succeed."""
    if PUBLIC.match(path) or path.startswith("/oauth/"):
        return True
    if who == "anonymous":
        return False
    if path == USERS and method == "GET":
        return True
    if path == f"{USERS}/{who}" or path.startswith(f"{USERS}/{who}/"):
        return True
    if method == "GET" and path == KUBECONFIG.format(who):
        return True
    if method == "GET" and re.search(rf"members/{re.escape(who)}$", path):
        return True
    return method == "GET" and bool(TENANT_READ.match(path))


@pytest.fixture(scope="module")
def regular(apiserver: ApiServer) -> tuple[str, str]:
    name = apiserver.make_user(unique("fuzz"), PASSWORD, globalrole="platform-regular")
    return name, apiserver.login(name, PASSWORD)


def check(who: str, case: Any, response: requests.Response) -> None:
    path = case.formatted_path
    where = f"{who}: {case.method} {path} -> {response.status_code} {response.text[:200]}"
    assert response.status_code < 500, where
    if 200 <= response.status_code < 300:
        assert may(who, case.method.upper(), path), "let through without authorization: " + where
        if who != "anonymous" and TENANT_READ.match(path) and case.method.upper() == "GET":
            body = response.json()
            if isinstance(body, dict) and "items" in body:
                assert body["items"] == [], "a tenant list shows a regular user what is not theirs: " + where


@SCHEMA.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_anonymous(case: Any, apiserver: ApiServer) -> None:
    response = case.call(base_url=apiserver.url, timeout=30, allow_redirects=False)
    check("anonymous", case, response)


@SCHEMA.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_regular_user(case: Any, apiserver: ApiServer, regular: tuple[str, str]) -> None:
    name, token = regular
    response = case.call(
        base_url=apiserver.url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        allow_redirects=False,
    )
    check(name, case, response)


@pytest.fixture(scope="module")
def admin_token(apiserver: ApiServer) -> str:
    name = apiserver.make_user(unique("fuzzadmin"), PASSWORD, globalrole="platform-admin")
    return apiserver.login(name, PASSWORD)


@SCHEMA.include(method="GET").parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_platform_admin_reads(case: Any, apiserver: ApiServer, admin_token: str) -> None:
    """Reads only (nothing to clean up): every handler's read path, fully authorized, never a 5xx."""
    response = case.call(
        base_url=apiserver.url,
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code} {response.text}"
    )


@SELF_REVIEWS.parametrize()
@settings(
    max_examples=MAX_EXAMPLES * 3, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
def test_self_reviews(case: Any, apiserver: ApiServer, regular: tuple[str, str]) -> None:
    """Any body: an answer about the caller (201) or a 400, never a 5xx; anonymous callers are refused."""
    name, token = regular
    response = case.call(
        base_url=apiserver.url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        allow_redirects=False,
    )
    where = f"{case.method} {case.formatted_path} -> {response.status_code} {response.text[:200]}"
    if case.method.upper() != "POST":  # the fuzzer's other methods: refused, never a 5xx
        assert response.status_code < 500, where
        return
    assert response.status_code in (201, 400), where
    if response.status_code == 201 and "selfsubjectreviews" in case.formatted_path:
        assert response.json()["status"]["userInfo"]["username"] == name
    anonymous = case.call(base_url=apiserver.url, timeout=30)
    assert anonymous.status_code == 403, f"anonymous {case.formatted_path} -> {anonymous.status_code}"


def test_table_is_not_vacuous() -> None:
    """The expectation table denies what it should (so the fuzz check can fail)."""
    assert not may("anonymous", "GET", USERS)
    assert not may("bob", "DELETE", f"{USERS}/alice")
    assert not may("bob", "GET", "/kapis/resources.kubesphere.io/v1alpha3/namespaces/x/pods")
    assert not may("bob", "POST", "/kapis/tenant.kubesphere.io/v1alpha2/workspaces")
    assert may("bob", "PUT", f"{USERS}/bob/password")
    assert may("bob", "GET", KUBECONFIG.format("bob")) and not may("bob", "GET", KUBECONFIG.format("alice"))
    assert may("anonymous", "GET", "/kapis/config.kubesphere.io/v1alpha2/configs/oauth")


MONITORED = SCHEMA.include(
    path_regex=r"^/kapis/(monitoring\.kubesphere\.io|resources\.kubesphere\.io/v1alpha2)/"
)


@MONITORED.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_monitoring_with_prometheus(case: Any, monitoring: Monitoring) -> None:
    """Fully authorized, with Prometheus answering: never a 5xx, and answers keep their shape."""
    response = case.call(
        base_url=monitoring.server.url, headers={"Authorization": f"Bearer {monitoring.token}"}, timeout=60
    )
    where = (
        f"{case.method} {case.formatted_path} {case.query} -> {response.status_code} {response.text[:300]}"
    )
    assert response.status_code < 500, where
    if response.status_code == 200 and case.formatted_path.startswith("/kapis/monitoring.kubesphere.io/"):
        body = response.json()
        items = body.get("results") if "results" in body else [body]
        for item in items or []:
            assert isinstance(item.get("data"), dict), where
