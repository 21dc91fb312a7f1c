"""What the auth proxy costs: the same requests straight to the predictor and through the
proxy, in one run on one machine, so the ratios hold on a noisy shared machine.

    .venv/bin/python -m bench.proxy_overhead [--model_path final_model.keras] [--seconds 10]

Prints, for a cheap route (the model-ready probe, public) and a cheap protected route (model
metadata, with a token), the p50 latency of sequential requests and the p50 the proxy adds;
then, for a small inference (one 64x48 PNG, V2 JSON, with a token) at concurrency 16, requests
per second direct and proxied and their ratio; then the same two for gRPC (`ModelMetadata`
sequentially, `ModelInfer` with the PNG as raw bytes at concurrency 16). Targets (issue 3):
p50 added <= 1 ms, proxied inference throughput >= 95 % of direct. The load generator (aiohttp
and grpc.aio clients) runs in this process; on a 2-core machine it competes with the proxy and
the predictor for the CPU, in both the direct and the proxied runs alike.
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
from grpc import aio
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from support.clients import INFER, MODEL, grpc_image_request, json_request
from support.contract_model import build_contract_model
from support.images import rgb_png
from support.issuer import dev_issuer
from support.servers import start_predictor, start_proxy, wait_ready


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


async def grpc_sequential(target: str, metadata: list, count: int) -> list[float]:
    times = []
    async with aio.insecure_channel(target) as channel:
        stub = GRPCInferenceServiceStub(channel)
        request = pb.ModelMetadataRequest(name=MODEL)
        for _ in range(count // 10):
            await stub.ModelMetadata(request, metadata=metadata)
        for _ in range(count):
            started = time.perf_counter()
            await stub.ModelMetadata(request, metadata=metadata)
            times.append(time.perf_counter() - started)
    return times


async def grpc_throughput(
    target: str, metadata: list, concurrency: int, seconds: float, request=None
):
    """Calls per second and the latencies, `concurrency` callers of ModelInfer on one channel
    (`request`: one small PNG as raw bytes unless given)."""
    request = request or grpc_image_request([rgb_png(64, 48)], raw=True)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    async with aio.insecure_channel(target) as channel:
        stub = GRPCInferenceServiceStub(channel)

        async def caller() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await stub.ModelInfer(request, metadata=metadata, timeout=60)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


async def measure(direct, proxied, token: str, args) -> None:
    """`direct` and `proxied`: (REST base URL, gRPC target) of the predictor and the proxy."""
    (direct, direct_grpc), (proxied, proxied_grpc) = direct, proxied
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

    bearer = [("authorization", f"Bearer {token}")]
    straight = statistics.median(await grpc_sequential(direct_grpc, [], args.requests))
    through = statistics.median(await grpc_sequential(proxied_grpc, bearer, args.requests))
    print(
        f"\n{'gRPC ModelMetadata (token checked)':<44} {ms(straight):>11} {ms(through):>12} "
        f"{ms(through - straight):>9}"
    )
    print(f"gRPC small inference (raw bytes), concurrency {args.concurrency}")
    rates = {}
    for name, target, metadata in (
        ("direct", direct_grpc, []),
        ("proxied", proxied_grpc, bearer),
        ("direct again", direct_grpc, []),
    ):
        rate, latencies = await grpc_throughput(target, metadata, args.concurrency, args.seconds)
        rates[name] = rate
        print(f"  {name:<13} {rate:8.1f} calls/s  p50 {ms(statistics.median(latencies))}")
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
        settings, token = dev_issuer(scratch / "issuer")
        proxy = start_proxy(scratch, **settings, upstream=predictor)
        try:
            asyncio.run(
                measure(
                    (predictor.url, predictor.grpc_target),
                    (f"http://127.0.0.1:{proxy.http_port}", proxy.grpc_target),
                    token,
                    args,
                )
            )
        finally:
            proxy.stop()
            predictor.stop()


if __name__ == "__main__":
    main()
