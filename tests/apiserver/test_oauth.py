"""/oauth/token, refresh, logout and the login records, against a real ks-apiserver and Redis."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

from tests.apiserver.conftest import CLIENT, ApiServer, StartServer, config_doc, unique
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster

PASSWORD = "P@88w0rd-Test1"


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def header(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))))


def test_login_issues_hs256_tokens_and_refresh_renews_them(apiserver: ApiServer) -> None:
    name = apiserver.make_user(unique("login"), PASSWORD)
    resp = apiserver.token_request(grant_type="password", username=name, password=PASSWORD)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 7200
    access, refresh = body["access_token"], body["refresh_token"]
    assert header(access)["alg"] == "HS256"
    c = claims(access)
    assert (c["iss"], c["sub"], c["username"], c["token_type"]) == ("kubesphere", name, name, "access_token")
    assert c["exp"] - c["iat"] == 7200
    r = claims(refresh)
    assert r["token_type"] == "refresh_token"
    assert r["exp"] - r["iat"] == 7200 + 1800  # accessTokenMaxAge + accessTokenInactivityTimeout

    me = apiserver.get("/oauth/userinfo", token=access)
    assert me.status_code == 200 and me.json()["preferred_username"] == name

    renewed = apiserver.token_request(grant_type="refresh_token", refresh_token=refresh)
    assert renewed.status_code == 200, renewed.text
    new_access = renewed.json()["access_token"]
    assert apiserver.get("/oauth/userinfo", token=new_access).status_code == 200

    # An access token is not a refresh token, and a refresh token does not authenticate requests.
    wrong = apiserver.token_request(grant_type="refresh_token", refresh_token=access)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert apiserver.get("/oauth/userinfo", token=refresh).status_code == 401


def test_refresh_grant_with_the_refresh_token_as_bearer(apiserver: ApiServer) -> None:
    """The console sends ``Authorization: Bearer <refresh_token>`` with the refresh grant."""
    name = apiserver.make_user(unique("bearer-refresh"), PASSWORD)
    refresh = apiserver.token_request(grant_type="password", username=name, password=PASSWORD).json()[
        "refresh_token"
    ]
    resp = requests.post(
        f"{apiserver.url}/oauth/token",
        data={**CLIENT, "grant_type": "refresh_token", "refresh_token": refresh},
        headers={"Authorization": f"Bearer {refresh}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert claims(resp.json()["access_token"])["username"] == name
    # Only the token endpoint takes it: the same header anywhere else is refused.
    assert apiserver.get("/kapis/iam.kubesphere.io/v1alpha2/users/" + name, token=refresh).status_code == 401


def test_login_writes_a_success_record_with_the_source_ip(apiserver: ApiServer) -> None:
    name = apiserver.make_user(unique("record"), PASSWORD)
    resp = requests.post(
        f"{apiserver.url}/oauth/token",
        data={**CLIENT, "grant_type": "password", "username": name, "password": PASSWORD},
        headers={"X-Real-IP": "10.1.2.3", "X-Forwarded-For": "10.9.9.9", "User-Agent": "ks-test/1"},
        timeout=30,
    )
    assert resp.status_code == 200
    records = wait_for(lambda: apiserver.users.login_records(name), timeout=10, what="a login record")
    (record,) = records
    assert record["metadata"]["name"].startswith(f"{name}-")
    assert record["spec"] == {
        "type": "Token",
        "provider": "",
        "sourceIP": "10.1.2.3",
        "userAgent": "ks-test/1",
        "success": True,
        "reason": "authenticated successfully",
    }
    # A refresh grant writes none.
    apiserver.token_request(grant_type="refresh_token", refresh_token=resp.json()["refresh_token"])
    assert len(apiserver.users.login_records(name)) == 1


def test_password_grant_errors(apiserver: ApiServer) -> None:
    name = apiserver.make_user(unique("errors"), PASSWORD)
    incorrect = {"error": "invalid_grant", "error_description": "incorrect password"}
    for form in (
        {"username": name, "password": "wrong"},
        {"username": unique("nobody"), "password": PASSWORD},
        {"username": name, "password": ""},
    ):
        resp = apiserver.token_request(grant_type="password", **form)
        assert (resp.status_code, resp.json()) == (400, incorrect), form
    # Only the existing user's wrong password leaves a record (the empty one counts as wrong too).
    records = apiserver.users.login_records(name)
    assert len(records) == 2
    assert {(r["spec"]["success"], r["spec"]["reason"]) for r in records} == {(False, "incorrect password")}

    # By email instead of the name.
    assert apiserver.token_request(
        grant_type="password", username=f"{name}@example.com", password=PASSWORD
    ).ok


def test_client_grant_type_and_content_type_errors(apiserver: ApiServer) -> None:
    url = f"{apiserver.url}/oauth/token"
    form = {"grant_type": "password", "username": "admin", "password": "x"}
    resp = requests.post(url, data={**form, "client_id": "nope", "client_secret": "kubesphere"}, timeout=30)
    assert (resp.status_code, resp.json()) == (
        401, {"error": "invalid_client", "error_description": "the OAuth client was not found"},
    )  # fmt: skip
    resp = requests.post(url, data={**form, "client_id": "kubesphere", "client_secret": "nope"}, timeout=30)
    assert (resp.status_code, resp.json()) == (
        401, {"error": "invalid_client", "error_description": "invalid client credential"},
    )  # fmt: skip
    resp = requests.post(url, data={**CLIENT, "grant_type": "magic"}, timeout=30)
    assert (resp.status_code, resp.json()) == (400, {"error": "unsupported_grant_type"})
    resp = requests.post(url, json={**CLIENT, **form}, timeout=30)
    assert resp.status_code == 415


def test_rate_limited_user_gets_429_and_keeps_old_tokens(apiserver: ApiServer) -> None:
    name = apiserver.make_user(unique("limited"), PASSWORD)
    old = apiserver.login(name, PASSWORD)
    for _ in range(10):
        resp = apiserver.token_request(grant_type="password", username=name, password="Wrong-pass1")
        assert resp.status_code == 400
    failed = [r for r in apiserver.users.login_records(name) if not r["spec"]["success"]]
    assert len(failed) == 10  # what the user controller counts against authenticateRateLimiterMaxTries
    # The user controller (ks-controller-manager) marks the user; this server only reads the state.
    apiserver.users.set_state(name, "AuthLimitExceeded")
    apiserver.wait_user_cached(name, PASSWORD, state="AuthLimitExceeded")
    resp = apiserver.token_request(grant_type="password", username=name, password=PASSWORD)
    assert (resp.status_code, resp.json()) == (
        429, {"error": "invalid_grant", "error_description": "auth rate limit exceeded"},
    )  # fmt: skip
    assert apiserver.get("/oauth/userinfo", token=old).status_code == 200


def test_disabled_user_cannot_log_in_and_its_tokens_stop_working(apiserver: ApiServer) -> None:
    disabled = apiserver.make_user(unique("disabled"), PASSWORD, state="Disabled")
    resp = apiserver.token_request(grant_type="password", username=disabled, password=PASSWORD)
    assert (resp.status_code, resp.json()) == (
        400, {"error": "invalid_grant", "error_description": "account is not active"},
    )  # fmt: skip
    assert apiserver.users.login_records(disabled) == []

    name = apiserver.make_user(unique("later-disabled"), PASSWORD)
    token = apiserver.login(name, PASSWORD)
    apiserver.users.set_state(name, "Disabled")
    [resp] = wait_for(
        lambda: [r] if (r := apiserver.get("/oauth/userinfo", token=token)).status_code == 401 else None,
        timeout=10, what="the disabled user's token to be refused",
    )  # fmt: skip
    assert resp.json() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "Unauthorized: account is not active", "reason": "Unauthorized", "code": 401,
    }  # fmt: skip


def test_logout_on_one_replica_revokes_on_the_other(
    apiserver: ApiServer, start_apiserver: StartServer
) -> None:
    other = start_apiserver()
    name = apiserver.make_user(unique("logout"), PASSWORD)
    other.wait_user_cached(name, PASSWORD)
    token = apiserver.login(name, PASSWORD)
    assert other.get("/oauth/userinfo", token=token).status_code == 200
    for _ in range(20):  # both replicas now remember the token as valid for a few seconds
        assert apiserver.get("/oauth/userinfo", token=token).status_code == 200
        assert other.get("/oauth/userinfo", token=token).status_code == 200
    resp = other.get("/oauth/logout", token=token)
    assert (resp.status_code, resp.json()) == (200, {"message": "success"})
    assert other.get("/oauth/userinfo", token=token).status_code == 401
    # The other replica hears of it through Redis pub/sub, within milliseconds.
    [refused] = wait_for(
        lambda: [r] if (r := apiserver.get("/oauth/userinfo", token=token)).status_code == 401 else None,
        # Under 5 s, the positive cache's lifetime: a 401 by then came through pub/sub.
        timeout=4, interval=0.01, what="the revocation to reach the other replica",
    )  # fmt: skip
    assert refused.json()["message"] == "Unauthorized: token not found in cache"


def test_single_login_revokes_the_earlier_token(
    redis_server: Any, start_apiserver: StartServer, apiserver: ApiServer
) -> None:
    single = start_apiserver(config_doc(redis_server, multiple_login=False))
    name = apiserver.make_user(unique("single"), PASSWORD)
    single.wait_user_cached(name, PASSWORD)
    first = single.login(name, PASSWORD)
    second = single.login(name, PASSWORD)
    refused = single.get("/oauth/userinfo", token=first)
    assert (refused.status_code, refused.json()["message"]) == (401, "Unauthorized: token not found in cache")
    assert single.get("/oauth/userinfo", token=second).status_code == 200


def test_in_memory_token_cache_when_configured(start_apiserver: StartServer, apiserver: ApiServer) -> None:
    local = start_apiserver(config_doc(None))
    name = apiserver.make_user(unique("inmem"), PASSWORD)
    local.wait_user_cached(name, PASSWORD)
    token = local.login(name, PASSWORD)
    assert local.get("/oauth/userinfo", token=token).status_code == 200
    # Not in Redis, so the shared server does not know it.
    assert apiserver.get("/oauth/userinfo", token=token).status_code == 401
