"""Request authentication: bearer, basic and anonymous, and the 401 bodies, on a real server."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
import requests

from tests.apiserver.conftest import ApiServer, delete_object, unique
from tests.helpers import wait_for

pytestmark = pytest.mark.cluster

PASSWORD = "P@88w0rd-Authn1"


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def status_401(message: str) -> dict[str, object]:
    return {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": f"Unauthorized: {message}", "reason": "Unauthorized", "code": 401,
    }  # fmt: skip


def test_basic_auth(apiserver: ApiServer) -> None:
    admin = apiserver.make_user(unique("basic-admin"), PASSWORD, globalrole="platform-admin")
    resp = requests.get(
        f"{apiserver.url}/api/v1/namespaces/default", headers=basic(admin, PASSWORD), timeout=30
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["metadata"]["name"] == "default"
    # By email as well.
    by_email = requests.get(
        f"{apiserver.url}/oauth/userinfo", headers=basic(f"{admin}@example.com", PASSWORD)
    )
    assert by_email.status_code == 200 and by_email.json()["name"] == admin

    wrong = requests.get(f"{apiserver.url}/oauth/userinfo", headers=basic(admin, "Not-the-pass1"), timeout=30)
    assert (wrong.status_code, wrong.json()) == (401, status_401("incorrect password"))
    records = apiserver.users.login_records(admin)
    assert [(r["spec"]["type"], r["spec"]["success"], r["spec"]["reason"]) for r in records] == [
        ("Password", False, "incorrect password")
    ]


def test_anonymous_requests_are_authorized_as_system_anonymous(apiserver: ApiServer) -> None:
    resp = requests.get(f"{apiserver.url}/api/v1/namespaces", timeout=30)
    assert resp.status_code == 403
    body = resp.json()
    assert body["kind"] == "Status" and body["reason"] == "Forbidden" and body["code"] == 403
    assert 'User "system:anonymous"' in body["message"]
    # The OAuth endpoints stay open to anonymous callers.
    assert requests.get(f"{apiserver.url}/oauth/userinfo", timeout=30).json() == {"error": "login_required"}


def test_bad_bearer_tokens(apiserver: ApiServer, jwt_secret: str) -> None:
    name = apiserver.make_user(unique("bearer"), PASSWORD)
    token = apiserver.login(name, PASSWORD)
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
    now = int(time.time())
    claims = {"iss": "kubesphere", "sub": name, "username": name, "token_type": "access_token"}
    expired = jwt.encode({**claims, "iat": now - 7200, "exp": now - 60}, jwt_secret)
    future = jwt.encode({**claims, "iat": now + 3600, "exp": now + 7200}, jwt_secret)
    forged = jwt.encode({**claims, "iat": now, "exp": now + 600}, "some-other-secret-of-32-bytes-or-more")
    uncached = jwt.encode({**claims, "iat": now, "exp": now + 600}, jwt_secret)
    cases = {
        tampered: "invalid token: Signature verification failed",
        expired: "token is expired",
        future: "token used before issued",
        forged: "invalid token: Signature verification failed",
        uncached: "token not found in cache",
    }
    for bad, message in cases.items():
        resp = apiserver.get("/oauth/userinfo", token=bad)
        assert (resp.status_code, resp.json()) == (401, status_401(message)), message
    other = apiserver.get("/oauth/userinfo", headers={"Authorization": "Token abc"})
    assert (other.status_code, other.json()) == (401, status_401("unsupported authorization scheme"))
    assert apiserver.get("/oauth/userinfo", token=token).status_code == 200


def test_token_of_a_deleted_user_is_refused(apiserver: ApiServer) -> None:
    name = apiserver.make_user(unique("gone"), PASSWORD)
    token = apiserver.login(name, PASSWORD)
    delete_object(apiserver.users.custom, "users", name)
    [resp] = wait_for(
        lambda: [r] if (r := apiserver.get("/oauth/userinfo", token=token)).status_code == 401 else None,
        timeout=10, what="the deleted user's token to be refused",
    )  # fmt: skip
    assert resp.json() == status_401(f'user.iam.kubesphere.io "{name}" not found')
