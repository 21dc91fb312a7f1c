"""The proxy's own port: liveness, readiness (are there signing keys?) and the pod's metrics.

Kept apart from the ports users and the kubelet's predictor probes go through, and open to
monitoring only (the NetworkPolicy's rule): `/metrics` is the proxy's own, `/metrics/predictor`
the predictor's, read from its loopback port at each scrape. Two targets rather than one merged
page: both processes export `process_*` and `python_*` families, which one page cannot hold
twice; Prometheus labels each target's series apart (the PodMonitor sets `container`)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from prometheus_client import REGISTRY, exposition

from .jwks import KeyCache

PREDICTOR_METRICS_TIMEOUT_SECONDS = 5.0
# The predictor's page is ~30 KB; anything far larger is not its metrics.
PREDICTOR_METRICS_MAX_BYTES = 4 * 1024 * 1024


def admin_application(
    keys: KeyCache, session: aiohttp.ClientSession, upstream_http: str
) -> web.Application:
    async def live(_: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def ready(_: web.Request) -> web.Response:
        if keys.ready:
            return web.json_response({"ready": True, "keys": sorted(keys.keys)})
        return web.json_response({"ready": False, "reason": keys.problem}, status=503)

    async def metrics(request: web.Request) -> web.Response:
        """Prometheus text, or OpenMetrics when the scraper asks for it."""
        encode, kind = exposition.choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(REGISTRY), headers={"Content-Type": kind})

    async def predictor_metrics(request: web.Request) -> web.Response:
        """The predictor's page as it wrote it, in the format the scraper asked for; 503 when
        it cannot be read, which Prometheus records as the target being down (`up == 0`)."""
        timeout = aiohttp.ClientTimeout(total=PREDICTOR_METRICS_TIMEOUT_SECONDS)
        # Uncompressed: the page is passed on as it comes, without its Content-Encoding.
        headers = {"Accept": request.headers.get("Accept", "*/*"), "Accept-Encoding": "identity"}
        try:
            async with session.get(
                upstream_http + "/metrics", headers=headers, timeout=timeout
            ) as answer:
                if answer.status != 200:
                    raise ValueError(f"answered {answer.status}")
                body = await _whole(answer)
                kind = answer.headers.get("Content-Type", exposition.CONTENT_TYPE_LATEST)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            return web.Response(status=503, text=f"the predictor's metrics: {reason}\n")
        return web.Response(body=body, headers={"Content-Type": kind})

    app = web.Application()
    app.router.add_get("/livez", live)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/metrics/predictor", predictor_metrics)
    return app


async def _whole(answer: aiohttp.ClientResponse) -> bytes:
    """The whole page, up to `PREDICTOR_METRICS_MAX_BYTES` (one `read(n)` may return part of
    it: a page cut at a chunk boundary would be a scrape with series missing, not an error)."""
    declared = answer.content_length
    if declared is not None and declared > PREDICTOR_METRICS_MAX_BYTES:
        raise ValueError(f"a page of {declared} bytes")
    body = bytearray()
    async for chunk in answer.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > PREDICTOR_METRICS_MAX_BYTES:
            raise ValueError(f"a page over {PREDICTOR_METRICS_MAX_BYTES} bytes")
    if declared is not None and len(body) != declared:
        raise ValueError(f"{len(body)} of {declared} bytes")
    return bytes(body)
