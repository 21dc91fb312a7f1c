"""The proxy's own port: liveness, readiness (are there signing keys?) and metrics.

Kept apart from the door users and the kubelet's predictor probes go through."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .jwks import KeyCache


def admin_application(keys: KeyCache) -> web.Application:
    async def live(_: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def ready(_: web.Request) -> web.Response:
        if keys.ready:
            return web.json_response({"ready": True, "keys": sorted(keys.keys)})
        return web.json_response({"ready": False, "reason": keys.problem}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/livez", live)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/metrics", metrics)
    return app
