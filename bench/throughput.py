"""Throughput, measured: the runtimes' ceiling, the service end to end, and the course's app,
in one run on one machine; writes bench/RESULTS.md with every target marked met or not.

    .venv/bin/python -m bench.throughput [--seconds 8] [--models vgg16,demo]

For each model (the course's VGG16 architecture with random weights, and the built-in demo):
1. the ceiling: each runtime on pre-decoded tensors at its best batch size, called by one
   thread and by as many threads as it runs calls at once (OpenVINO: one per stream) (images/s,
   and the share of the CPU's FP32 peak, FLOPs per image counted from the model's layers);
2. the service end to end with a real 640x480 JPEG (a course photo from its original,
   tests/data/course-photos/originals), straight to the predictor and through the auth proxy,
   over V2 REST JSON (base64), V2 REST binary extension and gRPC, at concurrency 1, 4, 16 and
   64: images/s, p50 / p95 / p99;
3. the course's app (bench/course_app.py: one model.predict per /upload) at the same
   concurrencies;
4. liveness latency while the service is saturated (64 clients), and the predictor's peak RSS.
Each measurement's window opens once every client has had an answer on average; a request is
credited with the share of its time inside the window (see `closed_loop`).

Besides the tables, two plots of the same run (bench/plotting.py): images/s against concurrency
(`--plot`, docs/throughput.png) and the latency percentiles against concurrency
(`--latency_plot`, docs/latency.png), a line per door and protocol and one for the course's app.
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

import aiohttp
import numpy as np

from bench import plotting
from predictor import default_model
from predictor.imaging import ImageLimits, decode_image
from support.clients import binary_body, json_request
from support.images import original_photo_paths
from support.issuer import dev_issuer
from support.servers import ROOT, free_port, start_predictor, start_proxy, wait_ready

CONCURRENCIES = (1, 4, 16, 64)
PLOT = ROOT / "docs" / "throughput.png"
LATENCY_PLOT = ROOT / "docs" / "latency.png"


# -- the model's cost and the machine's peak -----------------------------------------------------


def flops_per_image(model) -> float:
    """Multiply-adds x 2 of the convolutions and dense layers, counted from their shapes."""
    import keras

    total = 0
    layers = [model]
    while layers:
        layer = layers.pop()
        if isinstance(layer, keras.Model):
            layers.extend(layer.layers)
            continue
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            out = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * out[1] * out[2] * out[3] * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            out = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * out[1] * out[2] * out[3] * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return float(total)


def fp32_peak_gflops() -> tuple[float, str]:
    """cores x clock x FP32 FLOPs per cycle: two FMA units of 512 bits (64), or of 256 bits
    (32). AMD before Zen 5 (family 26) runs AVX-512 on 256-bit units: 32. The clock is what
    /proc/cpuinfo says, the nominal one under a hypervisor; a boosting CPU goes above it."""
    info = Path("/proc/cpuinfo").read_text()
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in info.splitlines())
        if key.strip() in ("vendor_id", "cpu family", "flags")
    )
    mhz = max(float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz"))
    flags = fields.get("flags", "").split()
    wide = "avx512f" in flags and not (
        fields.get("vendor_id") == "AuthenticAMD" and int(fields.get("cpu family", 0)) < 26
    )
    per_cycle = 64 if wide else 32 if "fma" in flags else 16
    cores = len(os.sched_getaffinity(0))
    how = f"{cores} cores x {mhz / 1000:.2f} GHz x {per_cycle} FP32 FLOP/cycle"
    return cores * mhz / 1000 * per_cycle, how


def sgemm_gflops(size: int = 2048, seconds: float = 2.0) -> float:
    """What a large FP32 matrix product reaches here on every core, the better of numpy's BLAS
    and TensorFlow's (oneDNN): the peak the clock and the vector units actually give, turbo
    included."""
    import tensorflow as tf

    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    t = tf.constant(a)
    best = 0.0
    for product in (lambda: a @ a, lambda: tf.linalg.matmul(t, t).numpy()):
        product()
        started, runs = time.perf_counter(), 0
        while runs < 2 or time.perf_counter() - started < seconds:
            product()
            runs += 1
        best = max(best, 2 * size**3 * runs / (time.perf_counter() - started) / 1e9)
    return best


def ceilings(path: Path, pixels: np.ndarray, seconds: float) -> dict[str, dict]:
    """Per runtime, as the service runs it: one caller at a time (OpenVINO's latency model)
    and `parallel` callers at once (its throughput streams), each at its best batch size.
    Returns {runtime: {"callers": n, "batch": b, "rate": images/s, "single": s}}."""
    from predictor.runtime.measure import images_per_second
    from predictor.runtime.runtimes import load_runtime

    results = {}
    for name in ("tensorflow", "openvino"):
        runtime = load_runtime(path, name)
        best = {"callers": 1, "batch": 1, "rate": 0.0}
        for callers in sorted({1, runtime.parallel}):
            for batch in (1, 2, 4, 8, 16, 32):
                tensor = np.repeat(pixels[:1], batch, axis=0)
                rate = images_per_second(runtime, tensor, callers, seconds / 4).rate
                if rate > best["rate"]:
                    best = {"callers": callers, "batch": batch, "rate": rate}
                if batch >= 8 and rate < best["rate"] * 0.9:
                    break
        single = []
        for _ in range(7):
            started = time.perf_counter()
            runtime(pixels[:1])
            single.append(time.perf_counter() - started)
        results[name] = {**best, "single": statistics.median(single)}
        print(
            f"  ceiling {name}: {best['rate']:.1f} images/s at batch {best['batch']} "
            f"x {best['callers']} caller(s), single image {results[name]['single'] * 1000:.1f} ms",
            flush=True,
        )
    return results


# -- load generation -------------------------------------------------------------------------------


async def closed_loop(send, concurrency: int, seconds: float) -> dict:
    """`concurrency` clients calling `send()` back to back: images/s over a window of
    `seconds`, and latency percentiles of the requests that finished in it.

    The window opens once `concurrency` answers have come back (the burst of the clients'
    first requests is over). Answers come in clumps (a batch of 16 finishes at once), so
    counting the answers that fall in the window would be off by up to a clump: each request is
    credited instead with the share of its own time that lies in the window. The clients stop
    starting requests when it closes and finish those in flight, so every share is known."""
    spans: list[tuple[float, float]] = []  # (started, finished)
    failed: list[str] = []
    warm = asyncio.get_running_loop().create_future()
    close_at = [float("inf")]

    async def client():
        while time.perf_counter() < close_at[0]:
            t = time.perf_counter()
            try:
                await send()
            except Exception as exc:  # a refused or broken request: counted, not served
                failed.append(type(exc).__name__)
                await asyncio.sleep(0.01)
                continue
            spans.append((t, time.perf_counter()))
            if len(spans) >= concurrency and not warm.done():
                warm.set_result(spans[-1][1])

    tasks = [asyncio.create_task(client()) for _ in range(concurrency)]
    try:
        opened = await asyncio.wait_for(asyncio.shield(warm), 600)
        close_at[0] = opened + seconds
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    closed = opened + seconds
    served = sum(
        max(0.0, min(end, closed) - max(start, opened)) / (end - start)
        for start, end in spans
        if end > start
    )
    latencies = sorted(end - start for start, end in spans if opened <= end <= closed)
    latencies = latencies or [float("nan")]

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "rate": served / seconds,
        "p50": pct(0.5),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "failed": len(failed),
    }


def rest_json(session, url: str, jpeg: bytes, headers: dict):
    body = json.dumps(json_request([jpeg])).encode()
    return _poster(session, url, body, {**headers, "Content-Type": "application/json"})


def rest_binary(session, url: str, jpeg: bytes, headers: dict):
    body, extension = binary_body([jpeg], length_prefixed=False)
    return _poster(session, url, body, {**headers, **extension})


def _poster(session, url: str, body: bytes, headers: dict):
    async def send():
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            assert response.status == 200, response.status

    return send


def grpc_infer(channel, jpeg: bytes, metadata: list):
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(jpeg)
    request = pb.ModelInferRequest(model_name="cats-dogs-other", inputs=[tensor])
    call = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )

    async def send():
        await call(request, metadata=metadata, timeout=600)

    return send


def upload(session, url: str, jpeg: bytes, headers: dict):
    async def send():
        form = aiohttp.FormData()
        form.add_field("file", jpeg, filename="photo.jpg", content_type="image/jpeg")
        async with session.post(url, data=form, headers=headers) as response:
            await response.read()
            assert response.status == 200, response.status

    return send


async def probe_while_saturated(url: str, send, seconds: float) -> float:
    """p99 of the liveness probe, in ms, while 64 clients keep the service saturated. A probe
    still unanswered at the end counts with the time it has waited so far (a lower bound)."""
    probes: list[float] = []
    pending = [None]

    async def prober():
        async with aiohttp.ClientSession() as session:
            await asyncio.sleep(1)
            while True:
                pending[0] = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                probes.append(time.perf_counter() - pending[0])
                pending[0] = None
                await asyncio.sleep(0.1)

    task = asyncio.create_task(prober())
    await closed_loop(send, 64, seconds)
    if pending[0] is not None:
        probes.append(time.perf_counter() - pending[0])
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    probes.sort()
    return probes[min(len(probes) - 1, int(0.99 * len(probes)))] * 1000 if probes else float("nan")


# -- the run -------------------------------------------------------------------------------------


async def measure_service(predictor, proxy, token: str, jpeg: bytes, seconds: float) -> dict:
    import grpc

    auth = {"Authorization": f"Bearer {token}"}
    rows = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(600)
    ) as session:
        doors = {
            "direct": (predictor.url, predictor.grpc_target, {}, []),
            "proxy": (
                f"http://127.0.0.1:{proxy.http_port}",
                f"127.0.0.1:{proxy.grpc_port}",
                auth,
                [("authorization", auth["Authorization"])],
            ),
        }
        for door, (base, target, headers, metadata) in doors.items():
            channel = grpc.aio.insecure_channel(target)
            senders = {
                "REST JSON": rest_json(
                    session, base + "/v2/models/cats-dogs-other/infer", jpeg, headers
                ),
                "REST binary": rest_binary(
                    session, base + "/v2/models/cats-dogs-other/infer", jpeg, headers
                ),
                "gRPC": grpc_infer(channel, jpeg, metadata),
            }
            for protocol, send in senders.items():
                for concurrency in CONCURRENCIES:
                    row = await closed_loop(send, concurrency, seconds)
                    rows[(door, protocol, concurrency)] = row
                    print(f"  {door:<6} {protocol:<11} c={concurrency:<3} {cells(row)}", flush=True)
            await channel.close()
        saturate = rest_binary(
            session, predictor.url + "/v2/models/cats-dogs-other/infer", jpeg, {}
        )
        rows["liveness p99"] = await probe_while_saturated(
            predictor.url + "/v2/health/live", saturate, seconds
        )
    return rows


async def measure_course_app(url: str, jpeg: bytes, seconds: float) -> dict:
    rows = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(600)) as session:
        send = upload(session, url + "/upload", jpeg, {})
        for concurrency in CONCURRENCIES:
            rows[concurrency] = await closed_loop(send, concurrency, seconds)
            print(
                f"  course app c={concurrency:<3} {rows[concurrency]['rate']:7.2f} images/s  "
                f"failed {rows[concurrency]['failed']}  "
                f"p50 {rows[concurrency]['p50']:8.1f} ms",
                flush=True,
            )
        rows["liveness p99"] = await probe_while_saturated(url + "/health", send, seconds)
    return rows


def cells(row: dict, sep: str = "  ") -> str:
    """A measurement as text: images/s, then p50, p95, p99 in ms, then failed requests."""
    latencies = [f"{row[p]:.0f}" for p in ("p50", "p95", "p99")]
    return sep.join([f"{row['rate']:.2f}", *latencies, str(row["failed"])])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_vgg16(path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    base.trainable = False
    x = keras.layers.Dropout(0.2)(base.output)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    keras.Model(base.input, keras.layers.Dense(3, activation="sigmoid")(x)).save(path)


def photo() -> bytes:
    """A real ~640x480 JPEG: a course photo at its original size, resized and re-encoded."""
    import io

    from PIL import Image

    image = Image.open(original_photo_paths()[0]).convert("RGB").resize((640, 480))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8, help="window per measurement")
    parser.add_argument("--models", default="vgg16,demo")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--plot", type=Path, default=PLOT, help="images/s against concurrency")
    parser.add_argument(
        "--latency_plot", type=Path, default=LATENCY_PLOT, help="p50 / p95 / p99 by concurrency"
    )
    args = parser.parse_args()
    import keras

    jpeg = photo()
    nominal, nominal_how = fp32_peak_gflops()
    sgemm = sgemm_gflops()
    peak = max(nominal, sgemm)
    peak_how = (
        f"nominal {nominal:.0f} GFLOP/s = {nominal_how}; a 2048x2048 FP32 matrix product "
        f"reached {sgemm:.0f} GFLOP/s; the larger is the peak"
    )
    print(f"FP32 peak ≈ {peak:.0f} GFLOP/s ({peak_how})", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        settings, token = dev_issuer(scratch / "issuer")
        for name in args.models.split(","):
            path = default_model.PATH if name == "demo" else scratch / "vgg16.keras"
            if name == "vgg16":
                build_vgg16(path)
            print(f"{name}:", flush=True)
            flops = flops_per_image(keras.models.load_model(path))
            pixels = decode_image(jpeg, ImageLimits())[np.newaxis]
            ceiling = ceilings(path, pixels, args.seconds)
            predictor = wait_ready(start_predictor(path, scratch), timeout=600)
            proxy = start_proxy(
                scratch,
                **settings,
                upstream=predictor,
            )
            try:
                service = asyncio.run(measure_service(predictor, proxy, token, jpeg, args.seconds))
                rss = peak_rss_mb(predictor.popen.pid)
                runtime_lines = [
                    line.split("INFO")[-1].strip()
                    for line in predictor.log().splitlines()
                    if "runtime " in line or "batching: " in line
                ]
            finally:
                proxy.stop()
                predictor.stop()
            port = free_port()
            course = subprocess.Popen(
                [sys.executable, "-m", "bench.course_app", str(path), str(port)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    try:
                        import httpx

                        if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                            break
                    except Exception:
                        time.sleep(0.5)
                course_rows = asyncio.run(
                    measure_course_app(f"http://127.0.0.1:{port}", jpeg, args.seconds)
                )
            finally:
                course.terminate()
                course.wait(30)
            results[name] = {
                "flops": flops,
                "ceiling": ceiling,
                "service": service,
                "course": course_rows,
                "rss": rss,
                "runtime": runtime_lines,
            }
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    run = f"{command(args)}; {when}"
    drawn = plotting.save(rate_figure(results, run), args.plot)
    plotting.save(latency_figure(results, run), args.latency_plot)
    write_results(args, results, peak, peak_how, when, drawn)


# -- the plots ----------------------------------------------------------------------------------

# A colour per protocol, a line style per door: the same protocol direct and through the proxy
# side by side, and the course's app apart.
COLORS = {"REST JSON": "C0", "REST binary": "C1", "gRPC": "C2", "/upload": "C3"}
STYLES = {"direct": "-", "proxy": "--", "course app": ":"}


def configurations(result: dict) -> dict[tuple[str, str], dict[int, dict]]:
    """One model's measurements by configuration, (door, protocol), then by concurrency: the
    service's doors and protocols in the order measured, then the course's app."""
    found: dict[tuple[str, str], dict[int, dict]] = {}
    for key, row in result["service"].items():
        if isinstance(key, tuple):
            door, protocol, concurrency = key
            found.setdefault((door, protocol), {})[concurrency] = row
    found[("course app", "/upload")] = {
        c: row for c, row in result["course"].items() if isinstance(c, int)
    }
    return found


def lines_of(result: dict, value: str) -> tuple[plotting.Series, ...]:
    """A line per configuration of `value` ("rate", "p50", …) at each of CONCURRENCIES."""
    return tuple(
        plotting.Series(
            f"{door}, {protocol}" if door != "course app" else "course app, /upload",
            tuple(
                rows[c][value] if c in rows and rows[c][value] == rows[c][value] else None
                for c in CONCURRENCIES
            ),  # NaN (no request finished in the window): not measured
            color=COLORS[protocol],
            linestyle=STYLES[door],
        )
        for (door, protocol), rows in configurations(result).items()
    )


def rate_figure(results: dict, run: str) -> plotting.Figure:
    """images/s against concurrency, a panel per model, a line per configuration."""
    return plotting.Figure(
        title=f"bench.throughput: images/s, one 640x480 JPEG per request ({run})",
        panels=tuple(
            plotting.Panel(
                title=name,
                kind="lines",
                x=tuple(map(str, CONCURRENCIES)),
                series=lines_of(result, "rate"),
                ylabel="images/s",
                xlabel="concurrent clients",
            )
            for name, result in results.items()
        ),
        panel_size=(9.0, 4.5),
    )


def latency_figure(results: dict, run: str) -> plotting.Figure:
    """p50, p95 and p99 against concurrency: a row per model, a panel per percentile (log
    scale, ms), a line per configuration."""
    return plotting.Figure(
        title=f"bench.throughput: latency percentiles, ms ({run})",
        panels=tuple(
            plotting.Panel(
                title=f"{name}: {percentile}",
                kind="lines",
                x=tuple(map(str, CONCURRENCIES)),
                series=lines_of(result, percentile),
                ylabel=f"{percentile} ms",
                xlabel="concurrent clients",
                log_y=True,
                legend="right" if percentile == "p99" else "none",
            )
            for name, result in results.items()
            for percentile in ("p50", "p95", "p99")
        ),
        columns=3,
        panel_size=(5.2, 4.8),
    )


# bench.precision's section of the results file, between these markers: its own run writes it
# (it imports them from here), this one keeps it as it is.
PRECISION_BEGIN, PRECISION_END = "<!-- bench.precision -->", "<!-- /bench.precision -->"


def kept_sections(out: Path) -> list[str]:
    """bench.precision's section of the results file, kept as it is (its own run writes it)."""
    text = out.read_text() if out.exists() else ""
    if PRECISION_BEGIN not in text or PRECISION_END not in text:
        return []
    end = text.index(PRECISION_END) + len(PRECISION_END)
    return ["", text[text.index(PRECISION_BEGIN) : end]]


def command(args) -> str:
    return f".venv/bin/python -m bench.throughput --seconds {args.seconds:g} --models {args.models}"


def write_results(args, results: dict, peak: float, peak_how: str, when: str, drawn: str) -> None:
    plots = ", ".join(
        f"[{os.path.relpath(path, args.out.parent)}]({os.path.relpath(path, args.out.parent)})"
        for path in (args.plot, args.latency_plot)
    )
    lines = [
        "# Throughput",
        "",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, "
        f"FP32 peak ≈ {peak:.0f} GFLOP/s ({peak_how}); Python {platform.python_version()}.  ",
        f"Command: `{command(args)}`; one run, {when}.  ",
        f"Plots of this run: {plots}, drawn with {drawn}.",
        "",
    ]
    targets = []
    for name, r in results.items():
        best_name, best = max(r["ceiling"].items(), key=lambda item: item[1]["rate"])
        best_rate, best_single = best["rate"], best["single"]
        gflop = r["flops"] / 1e9
        lines += [f"## {name} ({gflop:.2f} GFLOP per image)", "", "Served with:", ""]
        lines += [f"- {line}" for line in r["runtime"]]
        lines += [
            "",
            "| runtime | calls at once | best batch | images/s | % of FP32 peak | single image |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for runtime, c in r["ceiling"].items():
            peak_share, latency = 100 * c["rate"] * gflop / peak, c["single"] * 1000
            lines.append(
                f"| {runtime} | {c['callers']} | {c['batch']} | {c['rate']:.2f} | "
                f"{peak_share:.0f} % | {latency:.1f} ms |"
            )
        lines += [
            "",
            "| door | protocol | concurrency | images/s | p50 ms | p95 ms | p99 ms | failed |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for key, row in r["service"].items():
            if isinstance(key, tuple):
                door, protocol, c = key
                lines.append(f"| {door} | {protocol} | {c} | {cells(row, ' | ')} |")
        for c in CONCURRENCIES:
            row = r["course"][c]
            lines.append(f"| course app | /upload | {c} | {cells(row, ' | ')} |")
        live = r["service"]["liveness p99"]
        course_live = r["course"]["liveness p99"]
        lines += [
            "",
            f"Liveness p99 while saturated (64 clients): service {live:.0f} ms, "
            f"course app {course_live:.0f} ms (a probe still unanswered at the end counts with "
            f"the time it had waited). Predictor peak RSS: {r['rss']:.0f} MB.",
            "",
        ]
        proxied16 = max(
            r["service"][("proxy", p, 16)]["rate"] for p in ("REST JSON", "REST binary", "gRPC")
        )
        course16 = r["course"][16]["rate"]
        c1 = min(r["service"][("proxy", p, 1)]["p50"] for p in ("REST JSON", "REST binary", "gRPC"))
        share = 0.9 if name == "vgg16" else 0.8
        factor = 3 if name == "vgg16" else 10
        targets += [
            (
                f"{name}: through the proxy at c=16 ≥ {share:.0%} of the best ceiling "
                f"({best_name}, {best_rate:.2f}/s)",
                proxied16 / best_rate,
                proxied16 >= share * best_rate,
                f"{proxied16:.2f}/s = {proxied16 / best_rate:.0%}",
            ),
            (
                f"{name}: ≥ {factor} times the course app at c=16",
                proxied16 / course16,
                proxied16 >= factor * course16,
                f"{proxied16:.2f} vs {course16:.2f}/s: {proxied16 / course16:.1f} times",
            ),
            (
                f"{name}: c=1 p50 ≤ single-image latency + 15 ms "
                f"({best_single * 1000:.0f} + 15 ms)",
                c1,
                c1 <= best_single * 1000 + 15,
                f"{c1:.0f} ms",
            ),
            (f"{name}: liveness p99 < 100 ms while saturated", live, live < 100, f"{live:.0f} ms"),
        ]
    lines += ["## Targets", "", "| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {t} | {shown} | {'yes' if ok else 'no'} |" for t, _, ok, shown in targets]
    args.out.write_text("\n".join([*lines, *kept_sections(args.out)]) + "\n")
    print("\n".join(lines[-len(targets) - 4 :]))
    print(f"wrote {args.out}, {args.plot} and {args.latency_plot}")


if __name__ == "__main__":
    main()
