"""Precision, measured: FP32, INT8 and BF16 side by side in one run, and start-to-ready times.

    .venv/bin/python -m bench.precision [--seconds 8] [--models vgg16,demo]

For each model (the course's VGG16 architecture with random weights, and the built-in demo)
and each precision (`--precision fp32|int8|bf16`, on a fresh MODEL_CACHE_DIR):
1. start-to-ready of a cold predictor process (TensorFlow, conversion, measuring, and for a
   reduced precision quantization and the guard), then of a warm one on the cache it left;
2. served through the auth proxy at concurrency 16, V2 REST binary and gRPC, a real JPEG;
3. the ceiling: the served runtime (read from that cache) on pre-decoded tensors, called by
   as many threads as it runs calls at once, batch 8;
4. top-1 agreement with FP32 and accuracy on the course photos the calibration never saw
   (the labelled photos of predictor/precision/photos the calibration did not use).
FP32 is the baseline of each ratio, measured in the same run. Writes its section of
bench/RESULTS.md (between its markers; bench.throughput keeps it), and a plot of the same run
(`--plot`, docs/precision.png; bench/plotting.py): per model, images/s of each precision with its
ratio to FP32, and each reduced precision's agreement with FP32 beside the guard's lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

from bench import plotting
from bench.throughput import PRECISION_BEGIN as BEGIN
from bench.throughput import PRECISION_END as END
from bench.throughput import build_vgg16, cells, closed_loop, grpc_infer, photo, rest_binary
from predictor import default_model
from predictor.imaging import ImageLimits, decode_image
from predictor.precision import guard
from predictor.runtime import loading
from predictor.runtime.cpus import available_cpus
from predictor.runtime.deciding import run
from predictor.runtime.measure import images_per_second
from support.images import course_photos_calibration_never_saw
from support.issuer import dev_issuer
from support.servers import ROOT, start_predictor, start_proxy, wait_ready

PRECISIONS = ("fp32", "int8", "bf16")
PLOT = ROOT / "docs" / "precision.png"


def served(predictor, proxy, token: str, jpeg: bytes, seconds: float) -> dict:
    import grpc

    async def measure() -> dict:
        auth = {"Authorization": f"Bearer {token}"}
        rows = {}
        url = f"http://127.0.0.1:{proxy.http_port}/v2/models/cats-dogs-other/infer"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            rows["REST binary"] = await closed_loop(
                rest_binary(session, url, jpeg, auth), 16, seconds
            )
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{proxy.grpc_port}")
            metadata = [("authorization", auth["Authorization"])]
            rows["gRPC"] = await closed_loop(grpc_infer(channel, jpeg, metadata), 16, seconds)
            await channel.close()
        return rows

    return asyncio.run(measure())


def start(path: Path, folder: Path, wanted: str, cache: Path) -> tuple[object, float]:
    started = time.monotonic()
    process = wait_ready(
        start_predictor(path, folder, MODEL_CACHE_DIR=str(cache), PRECISION=wanted), timeout=900
    )
    return process, time.monotonic() - started


def measure_model(path: Path, scratch: Path, jpeg: bytes, seconds: float, photos) -> dict:
    settings, token = dev_issuer(scratch / "issuer")
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    results, outputs = {}, {}
    for wanted in PRECISIONS:
        cache = scratch / f"cache-{path.stem}-{wanted}"
        predictor, cold = start(path, scratch, wanted, cache)
        proxy = start_proxy(scratch, **settings, upstream=predictor)
        try:
            rows = served(predictor, proxy, token, jpeg, seconds)
            lines = [
                line.split("] ", 1)[-1].strip()
                for line in predictor.log().splitlines()
                if "precision" in line and ("guard" in line or "CPU" in line)
            ]
        finally:
            proxy.stop()
            predictor.stop()
        predictor, warm = start(path, scratch, wanted, cache)
        predictor.stop()
        loaded = loading.load(
            path, sha256, wanted=wanted, threads=available_cpus(), cache_dir=cache
        )
        runtime = loaded.runtime
        batch = np.repeat(decode_image(jpeg, ImageLimits())[np.newaxis], 8, axis=0)
        ceiling = images_per_second(runtime, batch, runtime.parallel, seconds / 2).rate
        outputs[runtime.precision] = run(runtime, photos[0])
        results[wanted] = {
            "served precision": runtime.precision,
            "cold": cold,
            "warm": warm,
            "ceiling": ceiling,
            "rows": rows,
            "log": lines,
        }
        print(
            f"  {wanted}: serves {runtime.precision}; ready cold {cold:.1f} s, warm {warm:.1f} s; "
            f"ceiling {ceiling:.1f}/s; "
            + "; ".join(f"{p} c=16 {cells(r)}" for p, r in rows.items()),
            flush=True,
        )
    for wanted, result in results.items():
        if result["served precision"] in outputs:
            verdict = guard.judge(
                wanted, outputs["fp32"], outputs[result["served precision"]], photos[1]
            )
            result["agreement"], result["accuracy"] = verdict.agreement, verdict.accuracy
            result["agreement bound"] = verdict.agreement_bound
    return results


def command(args) -> str:
    return f".venv/bin/python -m bench.precision --seconds {args.seconds:g} --models {args.models}"


def section(args, results: dict, photos, when: str, drawn: str) -> list[str]:
    plot = os.path.relpath(args.plot, args.out.parent)
    lines = [
        BEGIN,
        "## Precision",
        "",
        f"Command: `{command(args)}`; one run, {when}. CPU flags: "
        + ", ".join(
            sorted(f for f in guard.cpu_flags() if "vnni" in f or "bf16" in f or "amx" in f)
        )
        + ". Agreement and accuracy on "
        + f"{len(photos[1])} course photos the calibration never saw"
        + "; served = through the proxy at c=16; ratios against FP32 of the same run; "
        + f"agreement at least: its one-sided {guard.CONFIDENCE:.0%} exact lower bound, as the "
        + f"guard judges it. Plot of this run: [{plot}]({plot}), drawn with {drawn}.",
        "",
    ]
    for name, rows in results.items():
        base = rows["fp32"]
        lines += [
            f"### {name}",
            "",
            "| precision | served as | ceiling images/s | vs fp32 | REST binary c=16 | vs fp32 "
            "| gRPC c=16 | vs fp32 | p99 ms (gRPC) | agreement | at least (95 % conf.) "
            "| accuracy | ready cold s | ready warm s |",
            "|" + " --- |" * 14,
        ]
        for wanted, r in rows.items():
            rest, grpc_row = r["rows"]["REST binary"], r["rows"]["gRPC"]
            agreement = f"{r['agreement']:.1%}" if "agreement" in r else "n/a"
            bound = f"{r['agreement bound']:.1%}" if "agreement bound" in r else "n/a"
            accuracy = f"{r['accuracy']:.1%}" if r.get("accuracy") is not None else "n/a"
            lines.append(
                f"| {wanted} | {r['served precision']} | {r['ceiling']:.2f} | "
                f"{r['ceiling'] / base['ceiling']:.2f} | {rest['rate']:.2f} | "
                f"{rest['rate'] / base['rows']['REST binary']['rate']:.2f} | "
                f"{grpc_row['rate']:.2f} | {grpc_row['rate'] / base['rows']['gRPC']['rate']:.2f} | "
                f"{grpc_row['p99']:.0f} | {agreement} | {bound} | {accuracy} | {r['cold']:.1f} | "
                f"{r['warm']:.1f} |"
            )
        lines += ["", "The guard at load:", ""]
        lines += [f"- {wanted}: {line}" for wanted, r in rows.items() for line in r["log"]]
        lines.append("")
    return [*lines, END]


def speed_panel(name: str, rows: dict) -> plotting.Panel:
    """images/s of each precision, ceiling and served, each bar labelled with its ratio to
    FP32 of the same run."""
    measures = {
        "ceiling (batch 8)": lambda r: r["ceiling"],
        "REST binary c=16": lambda r: r["rows"]["REST binary"]["rate"],
        "gRPC c=16": lambda r: r["rows"]["gRPC"]["rate"],
    }
    base = rows["fp32"]
    series = []
    for wanted, r in rows.items():
        values = tuple(measure(r) for measure in measures.values())
        ratios = tuple(measure(r) / measure(base) for measure in measures.values())
        label = (
            wanted
            if r["served precision"] == wanted
            else f"{wanted} (served {r['served precision']})"
        )
        series.append(
            plotting.Series(
                label,
                values,
                notes=tuple(
                    f"{plotting.rate_label(v)}\n{ratio:.2f}x"
                    for v, ratio in zip(values, ratios, strict=True)
                ),
            )
        )
    return plotting.Panel(
        title=f"{name}: images/s (label: images/s, then x FP32)",
        kind="bars",
        x=tuple(measures),
        series=tuple(series),
        ylabel="images/s",
    )


def agreement_panel(name: str, rows: dict, photos: int) -> plotting.Panel:
    """Each reduced precision's top-1 agreement with FP32 and the guard's lower bound on it,
    against the guard's minimum (%)."""
    reduced = [wanted for wanted in rows if wanted != "fp32"]
    found = {
        "agreement": [rows[w].get("agreement") for w in reduced],
        f"at least ({guard.CONFIDENCE:.0%} confidence)": [
            rows[w].get("agreement bound") for w in reduced
        ],
    }
    percents = {
        label: tuple(None if v is None else 100 * v for v in values)
        for label, values in found.items()
    }
    known = [v for values in percents.values() for v in values if v is not None]
    floor = 5 * ((min([*known, 100 * guard.AGREEMENT_MIN]) - 5) // 5)
    return plotting.Panel(
        title=f"{name}: top-1 agreement with FP32, {photos} photos",
        kind="bars",
        x=tuple(
            w if rows[w]["served precision"] == w else f"{w} (served {rows[w]['served precision']})"
            for w in reduced
        ),
        series=tuple(
            plotting.Series(
                label,
                values,
                notes=tuple("n/a" if v is None else f"{v:.1f}%" for v in values),
            )
            for label, values in percents.items()
        ),
        ylabel="% of photos",
        ylim=(max(0.0, floor), 101.0),
        hline=(100 * guard.AGREEMENT_MIN, f"the guard's minimum, {guard.AGREEMENT_MIN:.0%}"),
    )


def figure(results: dict, photos: int, run: str) -> plotting.Figure:
    """A row per model: speed, then agreement."""
    return plotting.Figure(
        title=f"bench.precision ({run})",
        panels=tuple(
            panel
            for name, rows in results.items()
            for panel in (speed_panel(name, rows), agreement_panel(name, rows, photos))
        ),
        columns=2,
        panel_size=(7.0, 4.5),
    )


def write(out: Path, lines: list[str]) -> None:
    text = out.read_text() if out.exists() else ""
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + text[text.index(END) + len(END) :].lstrip("\n")
    out.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8, help="window per measurement")
    parser.add_argument("--models", default="vgg16,demo")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--plot", type=Path, default=PLOT, help="speed and agreement")
    args = parser.parse_args()
    jpeg, photos = photo(), course_photos_calibration_never_saw()
    results = {}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for name in args.models.split(","):
            path = default_model.PATH if name == "demo" else scratch / "vgg16.keras"
            if name == "vgg16":
                build_vgg16(path)
            print(f"{name}:", flush=True)
            results[name] = measure_model(path, scratch, jpeg, args.seconds, photos)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    drawn = plotting.save(figure(results, len(photos[1]), f"{command(args)}; {when}"), args.plot)
    lines = section(args, results, photos, when, drawn)
    write(args.out, lines)
    print("\n".join(lines))
    print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
