"""What the console does with the answers, and what the core role's templates say it should get.

``console_rules`` is the console's reduction of a permission answer (``fetchRules``): the
``iam.kubesphere.io/role-template-rules`` of each returned role merged into ``{module: [actions]}``.
``template_rules`` computes the same from the YAML files the core role applies, so the suite checks
the server against the templates, not against a copy of its own output.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from kubernetes import client

from tests.apiserver.conftest import CLIENT, ApiServer
from tests.conftest import Cluster
from tests.helpers import wait_for

FILES = Path(__file__).resolve().parents[2] / "roles" / "ks_core" / "files"
IAM = "/kapis/iam.kubesphere.io/v1alpha2"
TENANT = "/kapis/tenant.kubesphere.io/v1alpha2"
TENANT3 = "/kapis/tenant.kubesphere.io/v1alpha3"
RULES = "iam.kubesphere.io/role-template-rules"
AGGREGATION = "iam.kubesphere.io/aggregation-roles"
PASSWORD = "P@88w0rd-Console1"


def console_rules(roles: list[dict[str, Any]]) -> dict[str, list[str]]:
    merged: dict[str, set[str]] = defaultdict(set)
    for role in roles:
        raw = ((role.get("metadata") or {}).get("annotations") or {}).get(RULES)
        for module, actions in (json.loads(raw) if raw else {}).items():
            merged[module].update(actions if isinstance(actions, list) else [actions])
    return {m: sorted(a) for m, a in sorted(merged.items())}


def _documents() -> list[dict[str, Any]]:
    found = []
    for folder in ("iam", "iam-kept"):
        for path in sorted((FILES / folder).glob("*.yaml")):
            found += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return found


def _scope_roles(scope: str) -> dict[str, dict[str, Any]]:
    kinds = {"global": "GlobalRole", "cluster": "ClusterRole", "workspace": "WorkspaceRole"}
    roles: dict[str, dict[str, Any]] = {}
    for doc in _documents():
        if doc["kind"] == kinds.get(scope):
            roles[doc["metadata"]["name"]] = doc
        elif doc["kind"] == "RoleBase":
            role = doc["role"]
            in_scope = f"scope.kubesphere.io/{scope}" in (doc["metadata"].get("labels") or {})
            if in_scope or (scope == "workspace" and role["kind"] == "WorkspaceRole"):
                roles[role["metadata"]["name"]] = role
    return roles


def template_rules(scope: str, role: str) -> dict[str, list[str]]:
    """The permissions the built-in ``role`` of ``scope`` should give, from the role files."""
    roles = _scope_roles(scope)
    names = json.loads((roles[role]["metadata"].get("annotations") or {}).get(AGGREGATION, "[]"))
    return console_rules([roles[n] for n in dict.fromkeys(names) if n in roles])


def call(server: ApiServer, method: str, path: str, token: str | None = None, **kw: Any) -> requests.Response:
    headers = dict(kw.pop("headers", None) or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    kw.setdefault("verify", server.verify)
    return requests.request(method, server.url + path, headers=headers, timeout=30, **kw)


def login(server: ApiServer, name: str, password: str = PASSWORD) -> dict[str, Any]:
    """The console's login: the password grant, form-encoded, with its OAuth client."""
    resp = requests.post(
        f"{server.url}/oauth/token",
        data={**CLIENT, "grant_type": "password", "username": name, "password": password},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


#: ks-controller-manager first works through every object the other suites left in the cluster.
WAIT = 90


@dataclass
class Site:
    server: ApiServer
    cluster: Cluster
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    users: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    ws: str = ""
    ns: str = ""

    def get(self, who: str, path: str, **kw: Any) -> Any:
        resp = call(self.server, "GET", path, self.tokens[who], **kw)
        assert resp.status_code == 200, f"{who} GET {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def send(self, who: str, method: str, path: str, **kw: Any) -> Any:
        return call(self.server, method, path, self.tokens.get(who), **kw)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.cluster.api)


def add_user(site: Site, key: str, globalrole: str) -> None:
    name = site.server.make_user(f"c{key}-{site.tag}", PASSWORD, globalrole=globalrole)
    site.users[key] = name
    site.tokens[key] = login(site.server, name)["access_token"]


def exec_pod(api: client.ApiClient, namespace: str, name: str) -> None:
    """A pod on a KWOK node whose exec runs the command on this machine (in /tmp), Running."""
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "nodeSelector": {"type": "kwok"},
                "tolerations": [{"operator": "Exists"}],
            },
        },
    )
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "kwok.x-k8s.io", "v1alpha1", namespace, "execs",
        {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Exec", "metadata": {"name": name},
         "spec": {"execs": [{"local": {"workDir": "/tmp"}}]}},
    )  # fmt: skip
    wait_for(
        lambda: core.read_namespaced_pod(name, namespace).status.phase == "Running",
        timeout=60,
        what=f"pod {namespace}/{name} Running",
    )


def forward_pod(api: client.ApiClient, namespace: str, name: str, *, port: int, target: int) -> None:
    """KWOK's PortForward for a pod: its ``port`` leads to ``127.0.0.1:<target>`` on this machine."""
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "kwok.x-k8s.io", "v1alpha1", namespace, "portforwards",
        {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward", "metadata": {"name": name},
         "spec": {"forwards": [{"ports": [port], "target": {"port": target, "address": "127.0.0.1"}}]}},
    )  # fmt: skip
