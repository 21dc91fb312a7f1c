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

`--model demo` serves the built-in demo model instead and sends what a client that preprocesses
sends: one course photo's FP32 pixel tensor [1, 224, 224, 3] per request, over gRPC
(`raw_input_contents`) and as V2 REST JSON numbers. It also measures the ceiling, the served
runtime on pre-decoded tensors as the predictor measures it at load (batch `--max_batch_size`,
as many callers as it runs calls at once), and prints for each side gRPC / ceiling and
REST JSON / gRPC: how close the service comes to its model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import orjson
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from bench.proxy_overhead import grpc_throughput, throughput
from predictor import default_model
from predictor.contract import INPUT_PIXELS
from predictor.imaging import ImageLimits, decode_image
from predictor.runtime.cpus import available_cpus
from support import images
from support.clients import INFER, MODEL, binary_body, json_request
from support.contract_model import build_contract_model
from support.images import rgb_png
from support.servers import ROOT, start_predictor, wait_ready


def tensor_loads(process) -> dict:
    """The demo model's loads: one course photo's FP32 pixel tensor per request."""
    pixels = course_pixels()
    body = orjson.dumps(
        {
            "inputs": [
                {
                    "name": INPUT_PIXELS,
                    "shape": list(pixels.shape),
                    "datatype": "FP32",
                    "data": pixels.ravel().tolist(),
                }
            ]
        }
    )
    tensor = pb.ModelInferRequest.InferInputTensor(
        name=INPUT_PIXELS, datatype="FP32", shape=list(pixels.shape)
    )
    request = pb.ModelInferRequest(
        model_name=MODEL, inputs=[tensor], raw_input_contents=[pixels.astype("<f4").tobytes()]
    )
    return {
        "gRPC tensor": lambda c, s: grpc_throughput(process.grpc_target, [], c, s, request),
        "REST JSON tensor": lambda c, s: throughput(
            process.url + INFER, body, {"Content-Type": "application/json"}, c, s
        ),
    }


def course_pixels() -> np.ndarray:
    """The first course photo as the model sees it, [1, 224, 224, 3] float32."""
    path = images.course_photo_paths(1)[0]
    return decode_image(path.read_bytes(), ImageLimits())[None]


def ceiling(batch: int) -> float:
    """Images/s of the demo model in OpenVINO FP32 (what the predictor serves it with on an
    x86 CPU) on pre-decoded tensors, as a load measures it: batch `batch`, one caller per call
    it runs at once."""
    from predictor.runtime.measure import images_per_second
    from predictor.runtime.runtimes import load_runtime

    runtime = load_runtime(default_model.PATH, "openvino", available_cpus())
    pixels = np.repeat(course_pixels(), batch, axis=0)
    return images_per_second(runtime, pixels, runtime.parallel, seconds=3.0).rate


def loads(process, model: str = "contract") -> dict:
    """name -> a coroutine factory measuring one load on `process` for `seconds`."""
    if model == "demo":
        return tensor_loads(process)
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
            for name, load in loads(process, args.model).items():
                rate, _ = await load(args.concurrency, args.seconds)
                rates.setdefault((name, side), []).append(rate)
        print(f"round {round_ + 1} of {args.rounds} done", flush=True)
    print(f"\nA = {args.base}, B = the working tree; requests/s at concurrency {args.concurrency}")
    print(f"{'load':<16} {'A (each round)':>26} {'B (each round)':>26} {'B / A':>7}")
    for name in loads(base, args.model):
        a, b = rates[(name, "A")], rates[(name, "B")]
        shown = [" ".join(f"{r:7.1f}" for r in x) for x in (a, b)]
        ratio = statistics.median(b) / statistics.median(a)
        print(f"{name:<16} {shown[0]:>26} {shown[1]:>26} {ratio:7.3f}")
    if args.model == "demo":
        top = ceiling(args.max_batch_size)
        print(f"\nceiling (served runtime, batch {args.max_batch_size}): {top:.1f} images/s")
        for side in ("A", "B"):
            grpc_rate = statistics.median(rates[("gRPC tensor", side)])
            rest_rate = statistics.median(rates[("REST JSON tensor", side)])
            print(
                f"{side}: gRPC / ceiling {grpc_rate / top:.2f}, "
                f"REST JSON / gRPC {rest_rate / grpc_rate:.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="the commit to compare against")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--model",
        choices=("contract", "demo"),
        default="contract",
        help="contract: a small model, PNG loads; demo: the demo model, FP32 tensor loads",
    )
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
            model = default_model.PATH
            if args.model == "contract":
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
