"""Which INT8 recipe agrees best with FP32, and what it costs: the candidates side by side on the
demo model, in one run.

    .venv/bin/python -m bench.quantization [--views 40] [--seconds 4] [--rounds 3]

The photos are the predictor's default calibration folder, split as a load splits it
(precision/calibration.py): the calibration third calibrates every recipe; the held-out photos
(56 course photos) are judged, and so are `--views` views of each of them (precision/views.py's
crops, mirrors and brightness, seeded apart from the calibration's), because on 56 photos every
recipe agrees with FP32 on all: a top-1 flips only on photos near a decision boundary, which the
views make more of. For each recipe: top-1 disagreements with FP32 and accuracy on the held-out
photos and on their views, the mean and 99th percentile of |INT8 - FP32| over the three scores,
the time NNCF took, and images/s of the compiled model (batch 8, two callers, recipes
alternated `--rounds` times so that a noisy machine hits all alike), as a ratio of plain INT8's.
Prints a Markdown table (docs/precision.md keeps the last one).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import statistics
import time

import numpy as np

from predictor import default_model
from predictor.precision import calibration, quantize, views
from predictor.runtime.deciding import run
from predictor.runtime.measure import images_per_second
from predictor.runtime.runtimes import OpenVINORuntime, load_runtime

THREADS = 2


def recipes(source, photos: calibration.CalibrationSet) -> dict:
    """name -> a function quantizing `source`: the recipe shipped and the ones it beat."""
    import nncf

    logging.getLogger("nncf").setLevel(logging.ERROR)
    alone = nncf.Dataset([p[None] for p in photos.calibration])
    count = views.sample_count(len(photos.calibration))
    with_views = nncf.Dataset(range(count), lambda i: views.sample(photos.calibration, i))
    depthwise = [
        op.get_friendly_name()
        for op in source.get_ordered_ops()
        if op.get_type_name() == "GroupConvolution"
    ]
    n = len(photos.calibration)
    return {
        "plain (NNCF defaults, photos alone)": lambda: nncf.quantize(source, alone, subset_size=n),
        "full bias correction": lambda: nncf.quantize(
            source, alone, subset_size=n, fast_bias_correction=False
        ),
        "views": lambda: nncf.quantize(source, with_views, subset_size=count),
        "MIXED preset, views, full bias correction": lambda: nncf.quantize(
            source,
            with_views,
            subset_size=count,
            preset=nncf.QuantizationPreset.MIXED,
            fast_bias_correction=False,
        ),
        "shipped: views, full bias correction": lambda: quantize.quantize_int8(
            source, photos.calibration
        ),
        "shipped + first depthwise conv in FP32": lambda: nncf.quantize(
            source,
            with_views,
            subset_size=count,
            fast_bias_correction=False,
            ignored_scope=nncf.IgnoredScope(names=depthwise[:1]),
        ),
        "every depthwise conv in FP32": lambda: nncf.quantize(
            source,
            with_views,
            subset_size=count,
            fast_bias_correction=False,
            ignored_scope=nncf.IgnoredScope(types=["GroupConvolution"]),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", type=int, default=40, help="views of each held-out photo")
    parser.add_argument("--seconds", type=float, default=4.0, help="per speed measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternated speed rounds")
    args = parser.parse_args()

    photos = calibration.load()
    seen = views.views_of(photos.held_out, args.views)
    seen_labels = np.repeat(photos.held_out_labels, args.views)
    fp32 = load_runtime(default_model.PATH, "openvino", THREADS)
    reference = {"photos": run(fp32, photos.held_out), "views": run(fp32, seen)}
    truth = {"photos": photos.held_out_labels, "views": seen_labels}
    inputs = {"photos": photos.held_out, "views": seen}
    print(f"{photos.describe()}; {len(seen)} views of the held-out photos", flush=True)

    rows, compiled = [], {}
    for name, make in recipes(fp32.source, photos).items():
        began = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()):
            model = make()
        took = time.monotonic() - began
        runtime = OpenVINORuntime.compile(model, THREADS, "int8")
        row = {"recipe": name, "nncf s": f"{took:.0f}"}
        for part in ("photos", "views"):
            outputs = run(runtime, inputs[part])
            flips = int(np.sum(outputs.argmax(1) != reference[part].argmax(1)))
            accuracy = np.mean(outputs.argmax(1) == truth[part])
            fp32_accuracy = np.mean(reference[part].argmax(1) == truth[part])
            row[f"flips / {len(outputs)} {part}"] = str(flips)
            row[f"accuracy, {part} (FP32)"] = f"{accuracy:.2%} ({fp32_accuracy:.2%})"
            if part == "views":
                difference = np.abs(outputs - reference[part])
                row["mean abs diff"] = f"{difference.mean():.4f}"
                row["p99 abs diff"] = f"{np.quantile(difference, 0.99):.3f}"
        rows.append(row)
        compiled[name] = runtime
        print(row, flush=True)

    batch = photos.held_out[:8]
    rates: dict[str, list[float]] = {name: [] for name in compiled}
    rates["FP32"] = []
    for _ in range(args.rounds):
        for name, runtime in [*compiled.items(), ("FP32", fp32)]:
            rates[name].append(images_per_second(runtime, batch, 2, args.seconds).rate)
    plain = statistics.median(rates[next(iter(compiled))])
    for row in rows:
        rate = statistics.median(rates[row["recipe"]])
        row["images/s"] = f"{rate:.0f} ({rate / plain:.2f})"
    fp32_rate = statistics.median(rates["FP32"])
    rows.append(
        {"recipe": "FP32 (reference)", "images/s": f"{fp32_rate:.0f} ({fp32_rate / plain:.2f})"}
    )

    columns = list(rows[0])
    print("\n| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(row.get(column, "") for column in columns) + " |")


if __name__ == "__main__":
    main()
