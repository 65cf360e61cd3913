"""ks-apiserver: authentication, multi-tenant RBAC, platform APIs and the Kubernetes API proxy.

The public face, loaded on first use so that importing one submodule does not
pull in the server:

* ``Config`` / ``load_config`` — kubesphere.yaml plus environment (the shared
  schema, :mod:`kubesphere.config`);
* ``KubeClient``, ``Caches``, ``Informer``, ``KubeError`` — the Kubernetes side;
* ``Context``, ``build_app`` — the aiohttp application and what it shares;
* ``TokenIssuer`` — issuing, verifying and revoking tokens;
* ``main`` — the ``ks-apiserver`` command.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Config": ("kubesphere.config", "Config"),
    "ConfigError": ("kubesphere.config", "ConfigError"),
    "load_config": ("kubesphere.config", "load"),
    "KubeClient": ("apiserver.kube", "KubeClient"),
    "KubeError": ("apiserver.kube", "KubeError"),
    "Caches": ("apiserver.kube", "Caches"),
    "Informer": ("apiserver.kube", "Informer"),
    "Resource": ("apiserver.kube", "Resource"),
    "Context": ("apiserver.context", "Context"),
    "build_app": ("apiserver.server", "build_app"),
    "TokenIssuer": ("apiserver.tokens", "TokenIssuer"),
    "main": ("apiserver.cli", "main"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'apiserver' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), attr)
