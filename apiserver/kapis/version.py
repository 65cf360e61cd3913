"""``/kapis/version`` and ``/version``: this server's version and the cluster's Kubernetes version.

The fields are KubeSphere's (``gitVersion``, ``gitMajor``, ... ``kubernetes``);
the Go-specific ones describe the Python runtime instead.  The Kubernetes
version is asked once and remembered.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from typing import Any

from aiohttp import web

from apiserver import kube
from apiserver.kapis import common
from apiserver.openapi import Routes

routes = Routes("", "Version")
KUBERNETES: web.AppKey[dict[str, Any]] = web.AppKey("kubernetes_version", dict)
VERSION_SCHEMA = {
    "type": "object",
    "required": ["gitVersion", "kubernetes"],
    "properties": {
        k: {"type": "string"}
        for k in (
            "gitVersion",
            "gitMajor",
            "gitMinor",
            "gitCommit",
            "gitTreeState",
            "buildDate",
            "goVersion",
            "compiler",
            "platform",
        )
    },
}


def _own_version() -> str:
    try:
        return importlib.metadata.version("kubesphere-installer")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def info() -> dict[str, Any]:
    version = _own_version()
    major, minor, *_ = [*version.split("."), "0", "0"][:3]
    return {
        "gitVersion": f"v{version}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": f"python{platform.python_version()}",
        "compiler": sys.implementation.name,
        "platform": f"{sys.platform}/{platform.machine()}",
    }


def install(app: web.Application) -> None:
    app[KUBERNETES] = {}
    routes.install(app)


async def version(request: web.Request) -> web.Response:
    cached = request.app[KUBERNETES]
    if not cached:
        try:
            found = await common.ctx(request).kube.request("GET", "/version")
        except kube.KubeError:
            found = {}
        if isinstance(found, dict):
            cached.update(found)
    return common.ok({**info(), "kubernetes": cached})


routes.add("GET", "/kapis/version", summary="Server and Kubernetes versions", response=VERSION_SCHEMA)(
    version
)
routes.add("GET", "/version", summary="Server and Kubernetes versions", response=VERSION_SCHEMA)(version)
