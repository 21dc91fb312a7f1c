"""What the payload log costs: the same inferences through a proxy without it and through one
logging every request and answer to a real CloudEvents receiver (support/event_receiver.py, in a
process of its own), in interleaved rounds of one run, so the ratio holds on a noisy machine;
then its overload behaviour: a receiver that takes connections and never answers, against the
proxy without a log, with the drops counted and the queue's bytes against its bound.

    .venv/bin/python -m bench.payload_logging [--seconds 4] [--rounds 3] [--concurrency 8]

Prints, for a small V2 JSON inference (one 64x48 PNG) over REST and ModelInfer (the PNG as raw
bytes) over gRPC, each at `--concurrency`: requests per second, p50 / p99 latency and the proxy
process's CPU time a call, off and on, and on / off; the events sent and dropped (every one
should be sent); then the same under a receiver that stopped answering, and the drops by
reason. The load generator (the clients of bench/proxy_overhead.py) runs in this process and
shares the machine's CPUs with the predictor, the proxies and the receivers, alike for every
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from auth_proxy.metrics import PAYLOAD_LOG_DROP_REASONS
from bench.proxy_overhead import grpc_throughput, ms, throughput
from support.clients import INFER, json_request
from support.contract_model import build_contract_model
from support.event_receiver import metric
from support.images import rgb_png
from support.issuer import dev_issuer
from support.ports import free_port
from support.servers import ROOT, Process, start_predictor, start_proxy, wait_ready

OVERLOAD_QUEUE_BYTES = 1024 * 1024
DROPPED = "auth_proxy_payload_log_dropped_total"


def start_receiver(*flags: str) -> tuple[subprocess.Popen, str]:
    """`python -m support.event_receiver` on a free port; its URL once it answers."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "support.event_receiver", str(port), *flags], cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(200):
        try:
            httpx.get(url, timeout=1)  # 405: it listens
            return child, url
        except httpx.TransportError:
            time.sleep(0.05)
    child.kill()
    raise RuntimeError("the event receiver did not start")


async def measure(proxies: dict[str, Process], token: str, args) -> dict[str, dict]:
    """Each proxy's REST and gRPC latencies, rates and CPU time a call, over interleaved rounds
    (the order reversed every other round)."""
    body = json.dumps(json_request([rgb_png(64, 48)])).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    bearer = [("authorization", f"Bearer {token}")]
    results = {
        name: {door: {"latencies": [], "elapsed": 0.0, "cpu": 0.0} for door in ("rest", "grpc")}
        for name in proxies
    }
    for round_ in range(args.rounds):
        order = list(proxies) if round_ % 2 == 0 else list(reversed(proxies))
        for name in order:
            process = proxies[name]
            for door in ("rest", "grpc"):
                before = cpu_seconds(process)
                if door == "rest":
                    url = process.url + INFER
                    rate, latencies = await throughput(
                        url, body, headers, args.concurrency, args.seconds
                    )
                else:
                    rate, latencies = await grpc_throughput(
                        process.grpc_target, bearer, args.concurrency, args.seconds
                    )
                numbers = results[name][door]
                numbers["cpu"] += cpu_seconds(process) - before
                numbers["latencies"] += latencies
                numbers["elapsed"] += len(latencies) / rate
    for doors in results.values():
        for numbers in doors.values():
            calls = len(numbers["latencies"])
            numbers["rate"] = calls / numbers["elapsed"]
            numbers["cpu_per_call"] = numbers["cpu"] / calls
    return results


def cpu_seconds(process: Process) -> float:
    """CPU time the proxy's process has used so far (user and system): what logging costs the
    proxy itself, which a shared machine's noise blurs less than it blurs a rate."""
    times = psutil.Process(process.popen.pid).cpu_times()
    return times.user + times.system


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98]


def report(results: dict[str, dict], baseline: str, other: str) -> None:
    for door, unit in (("rest", "req/s"), ("grpc", "calls/s")):
        print(f"  {door.upper()}")
        for name in (baseline, other):
            numbers = results[name][door]
            latencies = numbers["latencies"]
            print(
                f"    {name:<10} {numbers['rate']:8.1f} {unit:<7} "
                f"p50 {ms(statistics.median(latencies))}  p99 {ms(p99(latencies))}  "
                f"proxy CPU {ms(numbers['cpu_per_call'])} a call"
            )
        ratio = results[other][door]["rate"] / results[baseline][door]["rate"]
        print(f"    {other} / {baseline}: {ratio:.3f}")


def log_counts(process: Process) -> str:
    sent = metric(process.admin_port, "auth_proxy_payload_log_sent_total")
    dropped = {
        reason: metric(process.admin_port, DROPPED, reason=reason)
        for reason in PAYLOAD_LOG_DROP_REASONS
    }
    held = metric(process.admin_port, "auth_proxy_payload_log_queue_bytes")
    capacity = metric(process.admin_port, "auth_proxy_payload_log_queue_capacity_bytes")
    drops = ", ".join(f"{reason} {count:.0f}" for reason, count in dropped.items())
    return (
        f"events sent {sent:.0f}; dropped: {drops}; "
        f"queue {held / 1024:.0f} KiB held of {capacity / 1024:.0f} KiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_path", help="a .keras file (default: a small contract model)")
    parser.add_argument("--seconds", type=float, default=4, help="per door, proxy and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    cpus = len(os.sched_getaffinity(0))
    print(
        f"machine: {platform.machine()}, {cpus} CPUs available, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model = args.model_path or scratch / "model.keras"
        if not args.model_path:
            build_contract_model(model)
        predictor = wait_ready(start_predictor(model, scratch))
        settings, token = dev_issuer(scratch / "issuer")
        receiver, url = start_receiver()
        silent, silent_url = start_receiver("--hang")
        proxies = {
            "off": start_proxy(scratch, **settings, upstream=predictor),
            "logging": start_proxy(scratch, **settings, upstream=predictor, PAYLOAD_LOG_URL=url),
            "overloaded": start_proxy(
                scratch,
                **settings,
                upstream=predictor,
                PAYLOAD_LOG_URL=silent_url,
                PAYLOAD_LOG_QUEUE_BYTES=str(OVERLOAD_QUEUE_BYTES),
                PAYLOAD_LOG_TIMEOUT_SECONDS="60",
            ),
        }
        try:
            print(
                f"\nsmall inference (one 64x48 PNG), concurrency {args.concurrency}, "
                f"{args.rounds} interleaved rounds of {args.seconds:g} s per door"
            )
            print("\nlogging every request and answer to a receiver (mode all)")
            pair = {name: proxies[name] for name in ("off", "logging")}
            results = asyncio.run(measure(pair, token, args))
            report(results, "off", "logging")
            time.sleep(1)  # the last events go
            print(f"  {log_counts(proxies['logging'])}")
            calls = sum(len(numbers["latencies"]) for numbers in results["logging"].values())
            print(f"  events expected: {2 * calls} (a request and a response per call)")

            print("\na receiver that takes connections and never answers (queue of 1 MiB)")
            pair = {name: proxies[name] for name in ("off", "overloaded")}
            results = asyncio.run(
                measure(pair, token, argparse.Namespace(**{**vars(args), "rounds": 1}))
            )
            report(results, "off", "overloaded")
            print(f"  {log_counts(proxies['overloaded'])}")
        finally:
            for process in proxies.values():
                process.stop()
            for child in (receiver, silent):
                child.terminate()
                child.wait(10)
            predictor.stop()


if __name__ == "__main__":
    main()
