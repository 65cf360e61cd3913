"""Benchmark of ks-apiserver's in-process hot paths (``python -m bench.authorizer``): no cluster needed.

* **authorization decision** with 1,003 GlobalRoleBindings, 300 ClusterRoleBindings,
  500 WorkspaceRoleBindings over 50 workspaces and 500 RoleBindings, held in
  real ``Informer`` stores: the subject index (the server's path) against a
  scan of every cluster-wide binding per request (the baseline, measured in
  the same run by giving the stores no resourceVersion).
* **list query** (``limit=10``) over 10,000 users: selecting the page against
  sorting the whole list (the baseline, ``limit`` absent then sliced).

Writes ``bench/results/authorizer.json``.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from apiserver import kube, query
from apiserver.identity import AUTHENTICATED_GROUP, UserInfo
from apiserver.rbac import Authorizer
from apiserver.requestinfo import resolve
from bench import write_result

IAM = Path(__file__).resolve().parent.parent / "roles" / "ks_core" / "files" / "iam"
WS = "kubesphere.io/workspace"


class Stores:
    """Real informer stores, filled without a cluster; ``versioned`` decides the authorizer's path."""

    def __init__(self, *, versioned: bool) -> None:
        self.versioned = versioned
        self.informers: dict[kube.Resource, kube.Informer] = {}

    def __getitem__(self, res: kube.Resource) -> kube.Informer:
        if res not in self.informers:
            informer = kube.Informer(None, res)  # type: ignore[arg-type]  # never started: no client needed
            informer.resource_version = "1" if self.versioned else ""
            self.informers[res] = informer
        return self.informers[res]

    def add(self, res: kube.Resource, obj: dict[str, Any]) -> None:
        self[res]._put(obj)


def _binding(kind: str, name: str, role_kind: str, role: str, user: str, **meta: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": name, **meta},
        "roleRef": {"kind": role_kind, "name": role},
        "subjects": [{"kind": "User", "name": user}],
    }


def fill(stores: Stores) -> None:
    for path, res in (
        ("globalroles.yaml", kube.GLOBALROLES),
        ("globalrolebindings.yaml", kube.GLOBALROLEBINDINGS),
    ):
        for doc in yaml.safe_load_all((IAM / path).read_text()):
            if doc:
                stores.add(res, doc)
    for i in range(1000):
        stores.add(
            kube.GLOBALROLEBINDINGS,
            _binding("GlobalRoleBinding", f"u{i}-regular", "GlobalRole", "platform-regular", f"u{i}"),
        )
    for i in range(300):
        stores.add(
            kube.CLUSTERROLES,
            {
                "metadata": {"name": f"cr{i}"},
                "rules": [{"apiGroups": ["x"], "resources": ["y"], "verbs": ["get"]}],
            },
        )
        stores.add(
            kube.CLUSTERROLEBINDINGS,
            _binding("ClusterRoleBinding", f"crb{i}", "ClusterRole", f"cr{i}", f"system:node:n{i}"),
        )
    for w in range(50):
        stores.add(
            kube.WORKSPACEROLES,
            {
                "metadata": {"name": f"ws{w}-viewer", "labels": {WS: f"ws{w}"}},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]}],
            },
        )
        stores.add(kube.NAMESPACES, {"metadata": {"name": f"ns{w}", "labels": {WS: f"ws{w}"}}})
        for j in range(10):
            user = f"u{w * 10 + j}"
            stores.add(
                kube.WORKSPACEROLEBINDINGS,
                _binding(
                    "WorkspaceRoleBinding",
                    f"{user}-ws{w}-viewer",
                    "WorkspaceRole",
                    f"ws{w}-viewer",
                    user,
                    labels={WS: f"ws{w}"},
                ),
            )
            stores.add(
                kube.ROLEBINDINGS,
                _binding("RoleBinding", f"rb{j}", "Role", "viewer", f"x{j}", namespace=f"ns{w}"),
            )


def per_call(fn: Callable[[], object], *, n: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of the mean microseconds per call."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


def authorization() -> dict[str, Any]:
    info = resolve("GET", "/api/v1/namespaces/ns7/pods", {})
    allowed = UserInfo(name="u75", groups=(AUTHENTICATED_GROUP,))
    denied = UserInfo(name="u999", groups=(AUTHENTICATED_GROUP,))
    out: dict[str, Any] = {}
    for label, versioned in (("indexed", True), ("scan_baseline", False)):
        stores = Stores(versioned=versioned)
        fill(stores)
        authz = Authorizer(stores)
        assert authz.authorize(allowed, info).allowed and not authz.authorize(denied, info).allowed
        out[label] = {
            "allow_us": round(per_call(lambda a=authz: a.authorize(allowed, info), n=2000), 1),
            "deny_us": round(per_call(lambda a=authz: a.authorize(denied, info), n=2000), 1),
        }
    out["speedup_allow"] = round(out["scan_baseline"]["allow_us"] / out["indexed"]["allow_us"], 1)
    out["speedup_deny"] = round(out["scan_baseline"]["deny_us"] / out["indexed"]["deny_us"], 1)
    return out


def listing() -> dict[str, Any]:
    users = [
        {
            "metadata": {
                "name": f"user-{i:05d}",
                "creationTimestamp": f"2026-01-{1 + i % 28:02d}T00:00:{i % 60:02d}Z",
            },
            "spec": {"email": f"u{i}@example.com"},
        }
        for i in range(10_000)
    ]
    paged = query.Query.parse({"limit": "10"})
    whole = query.Query.parse({})
    assert query.run(users, paged)[0] == query.run(users, whole)[0][:10]
    selected = per_call(lambda: query.run(users, paged), n=20) / 1000
    sorted_all = per_call(lambda: query.run(users, whole)[0][:10], n=20) / 1000
    return {
        "users": len(users),
        "page_ms": round(selected, 2),
        "full_sort_baseline_ms": round(sorted_all, 2),
        "speedup": round(sorted_all / selected, 1),
    }


def main() -> None:
    write_result(
        "authorizer",
        {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "authorization": authorization(),
            "list_query": listing(),
        },
    )


if __name__ == "__main__":
    main()
