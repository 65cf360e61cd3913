"""The per-user kubeconfig KubeSphere keeps in ``kubeconfig-<user>`` ConfigMaps.

As in KubeSphere the file holds no credential: one cluster (``local``, the
configured API server), one user entry with only a name, and the context
``<user>@local``.  The console fills the token in when a user downloads it.
"""

from __future__ import annotations

from typing import Any

import yaml

CLUSTER = "local"
KEY = "config"


def configmap_name(user: str) -> str:
    return f"kubeconfig-{user}"


def build(*, user: str, server: str, ca_data: str | None = None) -> str:
    """The kubeconfig text for ``user`` against ``server``; no token, no key."""
    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = ca_data
    context = f"{user}@{CLUSTER}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": cluster}],
        "contexts": [{"name": context, "context": {"cluster": CLUSTER, "user": user}}],
        "current-context": context,
        "users": [{"name": user, "user": {}}],
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)
