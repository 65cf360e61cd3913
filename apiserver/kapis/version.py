"""``/kapis/version`` and ``/version``: the KubeSphere API level served, our own version, Kubernetes'.

The fields are KubeSphere's (``gitVersion``, ``gitMajor``, ... ``kubernetes``).
``gitVersion`` is the KubeSphere release whose API this server is compatible
with (``v3.4.1``), because the console reads it to choose its API paths: the
console's session code takes the major.minor of ``gitVersion`` and uses the
tenant v1alpha3 workspace listing only above 3.2, and the About dialog and the
DevOps forms compare ``ksVersion`` (= ``gitVersion``) against 3.4.0.  This
server's own release is ``serverVersion``, a field of ours; the Go-specific
fields describe the Python runtime.  The Kubernetes version is asked once and
remembered.
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
#: The KubeSphere release whose API (paths, fields, behaviour) this server reproduces.
COMPATIBLE = "v3.4.1"
KUBERNETES: web.AppKey[dict[str, Any]] = web.AppKey("kubernetes_version", dict)
VERSION_SCHEMA = {
    "type": "object",
    "required": ["gitVersion", "kubernetes"],
    "properties": {
        k: {"type": "string"}
        for k in (
            "gitVersion",
            "serverVersion",
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
    major, minor, *_ = [*COMPATIBLE.lstrip("v").split("."), "0", "0"][:3]
    return {
        "gitVersion": COMPATIBLE,
        "serverVersion": f"v{_own_version()}",
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


SUMMARY = "KubeSphere API level, server and Kubernetes versions"
routes.add("GET", "/kapis/version", summary=SUMMARY, response=VERSION_SCHEMA)(version)
routes.add("GET", "/version", summary=SUMMARY, response=VERSION_SCHEMA)(version)
