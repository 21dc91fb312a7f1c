"""Wire the proxy together and run it: key cache, REST port, gRPC port, admin port, and the
payload log's sender when PAYLOAD_LOG_URL is set."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import aiohttp
from aiohttp import web
from grpc import aio

from .admin import admin_application
from .auth import Authorizer
from .budget import ByteBudget, MemoryPlan, map_large_blocks
from .grpc_proxy import GrpcProxy, grpc_server
from .jwks import KeyCache, fetcher
from .metrics import BUDGET_BYTES
from .payload_log import PayloadLog, origin
from .rest_proxy import RestProxy
from .settings import Settings

logger = logging.getLogger("auth_proxy")
LINGER_SECONDS = 2.0


async def serve(settings: Settings, memory: MemoryPlan) -> None:
    """Serve until SIGTERM / SIGINT; `memory`: the budget of requests and the payload log's
    (`budget.plan_memory`, checked before the ports open)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
    map_large_blocks()
    budget = ByteBudget(memory.requests)
    BUDGET_BYTES.set(budget.capacity)
    payload_log = None
    if settings.payload_log is not None:
        payload_log = PayloadLog(
            settings.payload_log, memory.payload_log, origin(settings.payload_log.namespace)
        )
        payload_log.start()
    # No Accept-Encoding of the client's own (aiohttp adds one when a request has none): the
    # predictor must compress only what the caller asked to have compressed.
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, skip_auto_headers=("Accept-Encoding",)
    ) as session:
        source = settings.jwks_uri or f"{settings.rules.issuer} (OIDC discovery)"
        keys = KeyCache(
            fetcher(settings.jwks_uri, settings.rules.issuer, session, settings.jwks_max_bytes),
            source=source,
            ttl_seconds=settings.jwks_ttl_seconds,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
            algorithms=settings.rules.algorithms,
        )
        # The ports open at once (liveness answers); readiness and tokens follow the keys,
        # which the refresher fetches now and then every TTL.
        refresher = asyncio.create_task(keys.keep_fresh())
        authorizer = Authorizer(settings.rules, keys)

        limit = settings.max_body_bytes
        channel = aio.insecure_channel(
            settings.upstream_grpc,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
            ],
        )
        grpc = grpc_server(settings, GrpcProxy(settings, authorizer, channel, budget, payload_log))
        rest = RestProxy(settings, authorizer, session, budget, payload_log)
        runners = []
        for application, port in (
            (rest.application(), settings.http_port),
            (admin_application(keys, session, settings.upstream_http), settings.admin_port),
        ):
            runner = web.AppRunner(
                application,
                access_log=None,
                handle_signals=False,
                # aiohttp closes a connection whose next request head has not arrived in this
                # time, counted from its opening or its last answer: slow or silent clients.
                keepalive_timeout=settings.client_idle_timeout_seconds,
                # After a refusal, what is left of the body is read and dropped for at most
                # this long (so the client can read its answer), then the connection closes.
                lingering_time=LINGER_SECONDS,
                # Bodies pass as sent: a gzip request reaches the predictor still gzip (it
                # decodes under its own limit), never inflated here for anonymous callers.
                auto_decompress=False,
            )
            await runner.setup()
            await web.TCPSite(runner, settings.listen_host, port, backlog=1024).start()
            runners.append(runner)
        await grpc.start()
        logger.info(
            "auth-proxy on %s: REST %d -> %s, gRPC %d -> %s, admin %d; memory budget %d MiB",
            settings.listen_host,
            settings.http_port,
            settings.upstream_http,
            settings.grpc_port,
            settings.upstream_grpc,
            settings.admin_port,
            budget.capacity // (1024 * 1024),
        )
        await stop.wait()
        logger.info("stopping")
        await grpc.stop(grace=10)
        for runner in runners:
            await runner.cleanup()
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        await channel.close()
        if payload_log is not None:
            await payload_log.close()
