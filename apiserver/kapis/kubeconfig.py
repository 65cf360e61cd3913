"""``GET /kapis/resources.kubesphere.io/v1alpha2/users/{user}/kubeconfig``: the user's kubeconfig download.

What KubeSphere 3.4 answers: the ``config`` key of the ConfigMap
``kubeconfig-<user>`` in ``kubesphere-controls-system`` as ``text/plain``,
with the ``local`` cluster's server replaced by ``kubernetes.master`` when
kubesphere.yaml sets it (the address users reach the cluster at).  The
ConfigMap and its client certificate are ks-controller-manager's work
(``controllers.kubeconfigs``); until the certificate is filed the user entry
is empty.  No ConfigMap: 404, any other failure 500, both as
``{"message": ...}`` JSON.  Each user may fetch their own (the
``authenticated`` role's ``users/<self>`` grant); anyone else needs
``get users/kubeconfig`` in ``resources.kubesphere.io``.
"""

from __future__ import annotations

from typing import Any

import yaml
from aiohttp import web

from apiserver import kube
from apiserver.kapis import common
from apiserver.openapi import Routes

PREFIX = "/kapis/resources.kubesphere.io/v1alpha2"
NAMESPACE = "kubesphere-controls-system"
CLUSTER = "local"
routes = Routes(PREFIX, "Toolbox")


def _message(status: int, text: str) -> web.Response:
    return web.json_response({"message": text}, status=status)


def with_server(text: str, master: str) -> str:
    """``text`` with the ``local`` cluster's server set to ``master``."""
    doc: Any = yaml.safe_load(text)
    if not isinstance(doc, dict):
        return text
    for item in doc.get("clusters") or []:
        if isinstance(item, dict) and item.get("name") == CLUSTER and isinstance(item.get("cluster"), dict):
            item["cluster"]["server"] = master
    return yaml.safe_dump(doc, sort_keys=False)


@routes.add(
    "GET", "/users/{user}/kubeconfig", summary="The user's kubeconfig (text/plain)", produces="text/plain"
)
async def get_kubeconfig(request: web.Request) -> web.Response:
    ctx = common.ctx(request)
    user = request.match_info["user"]
    name = f"kubeconfig-{user}"
    try:
        cm = await ctx.kube.get(kube.CONFIGMAPS, name, namespace=NAMESPACE)
    except kube.KubeError as exc:
        if exc.status == 404:
            return _message(404, f'configmaps "{name}" not found')
        return _message(500, exc.message)
    text = str((cm.get("data") or {}).get("config") or "")
    master = str(ctx.config.section("kubernetes").get("master") or "")
    if master and text:
        try:
            text = with_server(text, master)
        except yaml.YAMLError as exc:
            return _message(500, f"kubeconfig-{user}: {exc}")
    return web.Response(text=text, content_type="text/plain")
