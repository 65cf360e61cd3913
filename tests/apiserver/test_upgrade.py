"""The upgrade proxy's request and answer heads (``apiserver.upgrade``), and a refused upgrade relayed."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from apiserver import upgrade
from apiserver.kube import KubeClient
from tests.apiserver.conftest import ApiServer, unique
from tests.apiserver.kapis_support import PASSWORD


def test_request_head_carries_the_servers_credentials_not_the_callers() -> None:
    kube = KubeClient("https://10.0.0.9:6443", ssl_context=False, auth=lambda: "Bearer server-token")
    headers = CIMultiDict(
        {"Authorization": "Bearer caller", "Impersonate-User": "system:admin", "X-Remote-User": "root",
         "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "k==", "Origin": "https://c"}
    )  # fmt: skip
    request = make_mocked_request(
        "GET", "/api/v1/namespaces/n/pods/p/exec?command=ls&stdout=1", headers=headers
    )
    head = upgrade.request_head(kube, request).decode()
    lines = head.split("\r\n")
    assert lines[0] == "GET /api/v1/namespaces/n/pods/p/exec?command=ls&stdout=1 HTTP/1.1"
    assert "Host: 10.0.0.9:6443" in lines and "Authorization: Bearer server-token" in lines
    assert "Sec-WebSocket-Key: k==" in lines and "Origin: https://c" in lines
    assert "Upgrade: websocket" in lines and "Connection: Upgrade" in lines
    assert "caller" not in head and "Impersonate" not in head and "X-Remote" not in head
    assert head.endswith("\r\n\r\n") and head.count("\r\n\r\n") == 1


def test_parse_head() -> None:
    status, headers = upgrade.parse_head(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n"
    )
    assert status == 101 and headers["sec-websocket-protocol"] == "v5.channel.k8s.io"
    for bad in (b"SSH-2.0-x\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"):
        with pytest.raises(ValueError):
            upgrade.parse_head(bad)


@pytest.mark.cluster
def test_a_refused_upgrade_is_relayed(apiserver: ApiServer) -> None:
    """kube-apiserver's own answer to an upgrade it refuses (no such pod: 404) comes back as it is."""
    name = apiserver.make_user(unique("upg"), PASSWORD, globalrole="platform-admin")
    token = apiserver.login(name, PASSWORD)
    url = apiserver.url.replace("http", "ws", 1) + "/api/v1/namespaces/default/pods/no-such-pod/exec"

    async def handshake() -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(
                    url, params={"command": "true", "stdout": "1"}, protocols=["v5.channel.k8s.io"],
                    headers={"Authorization": f"Bearer {token}"},
                ):  # fmt: skip
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(handshake()) == 404
