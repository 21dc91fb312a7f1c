"""What a change to the predictor costs: the working tree against a base commit, in one run.

    .venv/bin/python -m bench.predictor_ab [--base HEAD] [--seconds 5] [--rounds 3]

Checks the base commit out in a temporary git worktree, starts its predictor and the working
tree's on the same model (a small contract model: the per-request work around the model is what
a protocol change touches), and loads them one at a time, alternating A (base), B (working
tree), A, B... so that drift on a noisy shared machine hits both alike. Loads: one 64x48 PNG per
request at concurrency 16, as V2 REST JSON, V2 REST with the binary extension, and gRPC with raw
bytes. Both use the same batch limit (`--max_batch_size`), which the predictor would otherwise
measure at load, each on its own. Prints each load's requests per second per round and the
ratio B / A of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench.proxy_overhead import grpc_throughput, throughput
from support.clients import INFER, binary_body, json_request
from support.contract_model import build_contract_model
from support.images import rgb_png
from support.servers import ROOT, start_predictor, wait_ready


def loads(process) -> dict:
    """name -> a coroutine factory measuring one load on `process` for `seconds`."""
    photo = rgb_png(64, 48)
    json_body = json.dumps(json_request([photo])).encode()
    binary, binary_headers = binary_body([photo], length_prefixed=False)
    return {
        "REST JSON": lambda c, s: throughput(
            process.url + INFER, json_body, {"Content-Type": "application/json"}, c, s
        ),
        "REST binary": lambda c, s: throughput(process.url + INFER, binary, binary_headers, c, s),
        "gRPC raw": lambda c, s: grpc_throughput(process.grpc_target, [], c, s),
    }


async def compare(base, tree, args) -> None:
    rates: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for side, process in (("A", base), ("B", tree)):
            for name, load in loads(process).items():
                rate, _ = await load(args.concurrency, args.seconds)
                rates.setdefault((name, side), []).append(rate)
        print(f"round {round_ + 1} of {args.rounds} done", flush=True)
    print(f"\nA = {args.base}, B = the working tree; requests/s at concurrency {args.concurrency}")
    print(f"{'load':<12} {'A (each round)':>26} {'B (each round)':>26} {'B / A':>7}")
    for name in loads(base):
        a, b = rates[(name, "A")], rates[(name, "B")]
        shown = [" ".join(f"{r:7.1f}" for r in x) for x in (a, b)]
        ratio = statistics.median(b) / statistics.median(a)
        print(f"{name:<12} {shown[0]:>26} {shown[1]:>26} {ratio:7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="the commit to compare against")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    # Fixed for both: measured at load, the two could settle on different sizes by noise.
    parser.add_argument("--max_batch_size", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        worktree = scratch / "base"
        git = ["git", "-C", str(ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", str(worktree), args.base], check=True)
        processes = []
        try:
            model = scratch / "model.keras"
            build_contract_model(model)
            # Started one after the other (a load is CPU-heavy); loaded one at a time below.
            for root in (worktree, ROOT):
                batch = str(args.max_batch_size)
                started = start_predictor(model, scratch, root=root, MAX_BATCH_SIZE=batch)
                processes.append(wait_ready(started))
            asyncio.run(compare(*processes, args))
        finally:
            for process in processes:
                process.stop()
            subprocess.run([*git, "worktree", "remove", "--force", str(worktree)], check=True)


if __name__ == "__main__":
    main()
