"""What the auth proxy costs: the same requests straight to the predictor and through the
proxy, in one run on one machine, so the ratios hold on a noisy shared machine.

    .venv/bin/python -m bench.proxy_overhead [--model_path final_model.keras] [--seconds 10]

Prints, for a cheap route (the model-ready probe, public) and a cheap protected route (model
metadata, with a token), the p50 latency of sequential requests and the p50 the proxy adds;
then, for a small inference (one 64x48 PNG, V2 JSON, with a token) at concurrency 16, requests
per second direct and proxied and their ratio. Targets (issue 3): p50 added <= 1 ms, proxied
inference throughput >= 95 % of direct. The load generator is an aiohttp client in this
process; on a 2-core machine it competes with the proxy and the predictor for the CPU, in both
the direct and the proxied runs alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from auth_proxy import devkeys
from tests.clients import INFER, json_request
from tests.images import rgb_png
from tests.servers import start_predictor, start_proxy, wait_ready
from tools.contract_model import build_contract_model


async def sequential_latencies(url: str, headers: dict, count: int) -> list[float]:
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count // 10):  # warm-up: connections, caches
            async with session.get(url, headers=headers) as response:
                await response.read()
        for _ in range(count):
            started = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                await response.read()
                assert response.status == 200, (url, response.status)
            times.append(time.perf_counter() - started)
    return times


async def throughput(url: str, body: bytes, headers: dict, concurrency: int, seconds: float):
    """Requests per second and the latencies, `concurrency` clients posting `body` in a loop."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def dev_token(keys: Path) -> tuple[dict, str]:
    """A development issuer in `keys`: the proxy's settings for it, and a 2-hour token."""
    devkeys.write_dev_keys(keys)
    return devkeys.proxy_settings(keys), devkeys.dev_token(keys, "get::prediction", 7200)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def measure(direct: str, proxied: str, token: str, args) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    cpus = len(os.sched_getaffinity(0))
    print(
        f"machine: {platform.machine()}, {cpus} CPUs available, Python {platform.python_version()}"
    )
    print(f"\n{'route':<44} {'direct p50':>11} {'proxied p50':>12} {'added':>9}")
    for name, path, headers in (
        ("GET model-ready probe (public)", "/v2/models/cats-dogs-other/ready", {}),
        ("GET model metadata (token checked)", "/v2/models/cats-dogs-other", auth),
    ):
        straight = statistics.median(await sequential_latencies(direct + path, {}, args.requests))
        through = statistics.median(
            await sequential_latencies(proxied + path, headers, args.requests)
        )
        print(f"{name:<44} {ms(straight):>11} {ms(through):>12} {ms(through - straight):>9}")

    body = json.dumps(json_request([rgb_png(64, 48)])).encode()
    content = {"Content-Type": "application/json"}
    print(
        f"\nsmall inference (one 64x48 PNG, V2 JSON), concurrency {args.concurrency}, "
        f"{args.seconds:.0f} s each"
    )
    rates = {}
    for name, url, headers in (
        ("direct", direct + INFER, content),
        ("proxied", proxied + INFER, {**content, **auth}),
        ("direct again", direct + INFER, content),
    ):
        rate, latencies = await throughput(url, body, headers, args.concurrency, args.seconds)
        rates[name] = rate
        print(f"  {name:<13} {rate:8.1f} req/s   p50 {ms(statistics.median(latencies))}")
    baseline = (rates["direct"] + rates["direct again"]) / 2
    print(f"  proxied / direct: {rates['proxied'] / baseline:.3f} (target >= 0.95)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_path", help="a .keras file (default: a small contract model)")
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per route")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model = args.model_path or scratch / "model.keras"
        if not args.model_path:
            build_contract_model(model)
        predictor = wait_ready(start_predictor(model, scratch))
        settings, token = dev_token(scratch / "issuer")
        proxy = start_proxy(
            scratch, **settings, UPSTREAM_HTTP=predictor.url, UPSTREAM_GRPC=predictor.grpc_target
        )
        try:
            asyncio.run(measure(predictor.url, f"http://127.0.0.1:{proxy.http_port}", token, args))
        finally:
            proxy.stop()
            predictor.stop()


if __name__ == "__main__":
    main()
