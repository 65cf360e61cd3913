"""The manager's HTTP endpoints: ``/healthz``, ``/readyz`` and Prometheus ``/metrics``.

``/healthz`` answers while the event loop runs.  ``/readyz`` is 200 on a
standby replica (it is healthy, just waiting) and on the leader once kopf has
listed every watched resource; 503 while the leader is still starting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


@dataclass
class Health:
    leading: bool = False
    operator_ready: bool = False
    standby: bool = True
    details: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.operator_ready if self.leading else self.standby


async def start(health: Health, *, host: str, port: int) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        role = "leader" if health.leading else "standby"
        if health.ready:
            return web.Response(text=f"ok ({role})\n")
        return web.Response(status=503, text=f"starting ({role})\n")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
