"""This predictor against two peer servers, on the same models, with the same client, in one run.

    .venv/bin/python -m bench.peers [--seconds 30] [--models demo,vgg16]
        [--servers ours,ours-int8,mlserver,mlserver-tuned,kserve,kserve-tuned]
        [--concurrency 1,16] [--protocols grpc,rest]

The whole run takes about 45 minutes on 2 CPUs (the first adds a few minutes to build the
peers' virtualenvs); `--seconds 2 --models demo` is a 4-minute smoke run.

What it measures: closed-loop throughput (images/s; latency p50 / p99 beside it) of
- `ours`: this predictor (`python -m predictor`, as support/servers.py starts it), FP32;
- `ours-int8`: the same with `--precision int8` (served INT8 only if its accuracy guard passes at
  load: the results say what it served);
- `mlserver`, `mlserver-tuned`: MLServer 1.7.1 with a custom runtime (bench/peers/mlserver/
  keras_runtime.py, an `mlserver.MLModel` that loads the model with `keras.saving.load_model`)
  and adaptive batching on (`max_batch_size` 16, `max_batch_time` 2 ms, model-settings.json);
  "as documented" calls `model.predict(x)`, "tuned" calls the model wrapped once in a
  `tf.function`;
- `kserve`, `kserve-tuned`: KServe 0.21's stock custom model (bench/peers/kserve/
  keras_model.py, a `kserve.Model` served by `kserve.ModelServer` with its defaults), the same
  two variants;
on the built-in demo model and on the course's VGG16 architecture (random weights,
`bench.throughput.build_vgg16`), all under the model name `cats-dogs-other`. The client is the
same for every server: V2 gRPC `ModelInfer` with a preprocessed FP32 tensor [1, 224, 224, 3]
named `pixels` in `raw_input_contents`, and V2 REST JSON with the same tensor as JSON numbers;
`--concurrency` clients each, back to back, for `--seconds` per cell (`bench.throughput.
closed_loop`: the window opens once every client has had an answer, and each request counts
with the share of its time inside it).

Before a server is measured it gets one real course photo's tensor on every protocol, and its
sigmoids must equal this predictor's FP32 answer within 1e-3 (absolute): a server that answers
otherwise is not measured, and the results say why. INT8 is not held to that: its largest
difference is reported. One server runs at a time, on 127.0.0.1 and ports from
support/ports.py; each is started in its own process group, waited for (ready), measured and
stopped with the whole group; the peak RSS of its processes (summed) is recorded.

Each peer runs in its own virtualenv, created on first use (a few minutes, pip's output shown)
under ~/.cache/cats-dogs-other/peers/<name> ($XDG_CACHE_HOME is honoured) from the pinned files
bench/peers/<name>/requirements.txt (the same TensorFlow, Keras and numpy as .venv), and made
anew when that file changes (bench/virtualenvs.py). Writes the table, the versions and each
server's configuration to stdout and to bench/peers/RESULTS.md, and the plot to docs/peers.png
(bench/plotting.py: matplotlib, .venv's if it has it, else a venv of its own).

The load generator runs in this process, on the same CPUs as the server, alike for every server.
This is a benchmark to rerun, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import orjson

from bench import plotting, virtualenvs
from bench.throughput import closed_loop
from predictor import default_model
from predictor.contract import INPUT_PIXELS, MODEL_NAME, OUTPUT_VALUES
from predictor.imaging import ImageLimits, decode_image
from support.images import original_photo_paths
from support.servers import ROOT, Process, free_port, wait_ready

PEERS = ROOT / "bench" / "peers"
RESULTS = PEERS / "RESULTS.md"
PLOT = ROOT / "docs" / "peers.png"
TOLERANCE = 1e-3  # largest absolute difference of a sigmoid from this predictor's FP32 answer
PROTOCOL_NAMES = {"grpc": "gRPC", "rest": "REST JSON"}


@dataclass(frozen=True)
class Server:
    key: str  # the name --servers takes
    label: str  # the column's heading
    venv: str | None  # the peer's virtualenv (bench/peers/<venv>/requirements.txt); None: .venv
    how: str  # how it is configured, for the results

    @property
    def exact(self) -> bool:
        """Held to this predictor's FP32 answer within TOLERANCE (INT8 is not: reported)."""
        return self.key != "ours-int8"


SERVERS = (
    Server(
        "ours",
        "ours FP32",
        None,
        "`python -m predictor --model_path M` (support/servers.py's command), FP32, every "
        "other setting at its default (runtime picked at load, adaptive batching).",
    ),
    Server(
        "ours-int8",
        "ours INT8",
        None,
        "the same with `--precision int8` (served INT8 only when the accuracy guard passes).",
    ),
    Server(
        "mlserver",
        "MLServer",
        "mlserver",
        "`mlserver start` with bench/peers/mlserver/settings.json (host 127.0.0.1, debug off: "
        "no access log) and documented/model-settings.json (`max_batch_size` 16, "
        "`max_batch_time` 0.002 s: adaptive batching); runtime keras_runtime.KerasRuntime "
        "calling `model.predict(x, verbose=0)`; MLServer's defaults otherwise (1 parallel "
        "inference worker).",
    ),
    Server(
        "mlserver-tuned",
        "MLServer tuned",
        "mlserver",
        "the same with tuned/model-settings.json: the model's call wrapped once in a "
        "`tf.function` (input signature [None, 224, 224, 3], traced at load), called directly.",
    ),
    Server(
        "kserve",
        "KServe",
        "kserve",
        "bench/peers/kserve/keras_model.py: a `kserve.Model` (sync `predict` on the V2 "
        "InferRequest, `model.predict(x, verbose=0)`) in `kserve.ModelServer` with its "
        "defaults (1 worker, no batching) but with no log line per request (as ours by default "
        "and MLServer with debug off), bound to 127.0.0.1.",
    ),
    Server(
        "kserve-tuned",
        "KServe tuned",
        "kserve",
        "the same with `--tuned`: the model's call wrapped once in a `tf.function`, called "
        "directly.",
    ),
)
BY_KEY = {server.key: server for server in SERVERS}
PEER_KEYS = ("mlserver", "mlserver-tuned", "kserve", "kserve-tuned")


# -- the peers' virtualenvs -------------------------------------------------------------------


def ensure_venv(name: str) -> Path:
    """The peer's virtualenv, made from its pinned requirements unless it already was."""
    folder = virtualenvs.cache_root() / "peers" / name
    return virtualenvs.ensure(PEERS / name / "requirements.txt", folder)


def versions(python: Path | str, packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions in the environment of `python` (absent ones left out)."""
    script = (
        "import importlib.metadata as m, json, platform, sys\n"
        "found = {'python': platform.python_version()}\n"
        "for name in sys.argv[1:]:\n"
        "    for dist in (name, name + '-cpu'):\n"
        "        try:\n"
        "            found[name] = m.version(dist)\n"
        "            break\n"
        "        except m.PackageNotFoundError:\n"
        "            pass\n"
        "print(json.dumps(found))\n"
    )
    out = subprocess.run(
        [str(python), "-c", script, *packages], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


# -- starting and stopping a server -----------------------------------------------------------


@dataclass
class Running:
    server: Server
    process: Process
    started: float
    extra_ports: list[int] = field(default_factory=list)

    def peak_rss_mb(self) -> float:
        """Sum of each of the server's processes' peak RSS (VmHWM), MB: its process group."""
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) != self.process.popen.pid:  # its process group
                    continue
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmHWM"):
                        total += int(line.split()[1])
        return total / 1024

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL after 20 s."""
        group = self.process.popen.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.popen.wait(20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.popen.wait()


def start(server: Server, model: Path, scratch: Path, venvs: dict[str, Path]) -> Running:
    """Start `server` on free loopback ports serving `model`, in a process group of its own."""
    http_port, grpc_port = free_port(), free_port()
    extra: list[int] = []
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    folder = scratch / f"{server.key}-{http_port}"
    folder.mkdir()
    if server.venv is None:
        argv = [
            sys.executable, "-m", "predictor", "--model_path", str(model),
            "--http_port", str(http_port), "--grpc_port", str(grpc_port),
        ]  # fmt: skip
        if server.key == "ours-int8":
            argv += ["--precision", "int8"]
        env["MODEL_CACHE_DIR"] = str(folder / "cache")  # a cold start, as support does
        cwd = ROOT
    elif server.venv == "mlserver":
        variant = "tuned" if server.key.endswith("-tuned") else "documented"
        shutil.copy(PEERS / "mlserver" / "settings.json", folder / "settings.json")
        model_folder = folder / MODEL_NAME
        model_folder.mkdir()
        shutil.copy(PEERS / "mlserver" / variant / "model-settings.json", model_folder)
        (model_folder / "model.keras").symlink_to(model.resolve())
        metrics_port = free_port()
        extra.append(metrics_port)
        env |= {
            "PYTHONPATH": str(PEERS / "mlserver"),
            "MLSERVER_HTTP_PORT": str(http_port),
            "MLSERVER_GRPC_PORT": str(grpc_port),
            "MLSERVER_METRICS_PORT": str(metrics_port),
        }
        argv = [str(venvs["mlserver"] / "bin" / "mlserver"), "start", str(folder)]
        cwd = folder  # MLServer keeps .metrics/ and .envs/ in its working folder
    else:
        argv = [
            str(venvs["kserve"] / "bin" / "python"), str(PEERS / "kserve" / "keras_model.py"),
            "--model_name", MODEL_NAME, "--model_path", str(model),
            "--http_port", str(http_port), "--grpc_port", str(grpc_port),
        ]  # fmt: skip
        if server.key.endswith("-tuned"):
            argv.append("--tuned")
        cwd = folder
    log_path = folder / "server.log"
    with open(log_path, "wb") as log:
        popen = subprocess.Popen(
            argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return Running(server, Process(popen, log_path, http_port, grpc_port), time.monotonic(), extra)


# -- the client -------------------------------------------------------------------------------


def photo_pixels() -> tuple[np.ndarray, str]:
    """A real course photo at its original size, preprocessed as the course trained."""
    path = original_photo_paths()[0]
    return decode_image(path.read_bytes(), ImageLimits())[np.newaxis], path.name


def grpc_request(pixels: np.ndarray):
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    tensor = pb.ModelInferRequest.InferInputTensor(
        name=INPUT_PIXELS, datatype="FP32", shape=list(pixels.shape)
    )
    return pb.ModelInferRequest(
        model_name=MODEL_NAME,
        inputs=[tensor],
        raw_input_contents=[pixels.astype("<f4").tobytes()],
    )


def grpc_values(response) -> np.ndarray:
    """The `values` output of a ModelInferResponse, raw or typed."""
    for index, output in enumerate(response.outputs):
        if output.name == OUTPUT_VALUES:
            if response.raw_output_contents:
                flat = np.frombuffer(response.raw_output_contents[index], dtype="<f4")
            else:
                flat = np.asarray(output.contents.fp32_contents, dtype=np.float32)
            return flat.reshape(list(output.shape))
    raise ValueError(f"no output {OUTPUT_VALUES!r} in {[o.name for o in response.outputs]}")


def rest_body(pixels: np.ndarray) -> bytes:
    """V2 REST JSON: the tensor as JSON numbers (float32's shortest form), row-major."""
    tensor = {
        "name": INPUT_PIXELS,
        "shape": list(pixels.shape),
        "datatype": "FP32",
        "data": pixels.astype(np.float32).reshape(-1),
    }
    return orjson.dumps({"inputs": [tensor]}, option=orjson.OPT_SERIALIZE_NUMPY)


def rest_values(answer: dict) -> np.ndarray:
    for output in answer["outputs"]:
        if output["name"] == OUTPUT_VALUES:
            return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
    raise ValueError(f"no output {OUTPUT_VALUES!r} in {[o['name'] for o in answer['outputs']]}")


class Client:
    """One server's senders: `call(protocol)` for an answer, `sender(protocol)` for load."""

    def __init__(self, process: Process, pixels: np.ndarray):
        import grpc

        self.url = f"{process.url}/v2/models/{MODEL_NAME}/infer"
        self.request = grpc_request(pixels)
        self.body = rest_body(pixels)
        self.channel = grpc.aio.insecure_channel(process.grpc_target)
        self.infer = self.channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=type(self.request).SerializeToString,
            response_deserializer=_infer_response_type().FromString,
        )
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(600)
        )

    async def close(self) -> None:
        await self.session.close()
        await self.channel.close()

    async def call(self, protocol: str) -> np.ndarray:
        if protocol == "grpc":
            return grpc_values(await self.infer(self.request, timeout=600))
        headers = {"Content-Type": "application/json"}
        async with self.session.post(self.url, data=self.body, headers=headers) as response:
            text = await response.read()
            if response.status != 200:
                raise RuntimeError(f"REST {response.status}: {text[:300]!r}")
            return rest_values(orjson.loads(text))

    def sender(self, protocol: str):
        if protocol == "grpc":

            async def send_grpc():
                await self.infer(self.request, timeout=600)

            return send_grpc
        headers = {"Content-Type": "application/json"}

        async def send_rest():
            async with self.session.post(self.url, data=self.body, headers=headers) as response:
                await response.read()
                assert response.status == 200, response.status

        return send_rest


def _infer_response_type():
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    return pb.ModelInferResponse


async def check_and_measure(
    running: Running, pixels: np.ndarray, reference: np.ndarray | None, args
) -> dict:
    """The server's answer on each protocol (checked against `reference` when it is exact),
    then each cell. A server that answers otherwise is not measured."""
    client = Client(running.process, pixels)
    result: dict = {"answers": {}, "cells": {}}
    try:
        for protocol in args.protocols:
            result["answers"][protocol] = (await client.call(protocol)).reshape(-1).tolist()
        answers = [np.asarray(a) for a in result["answers"].values()]
        base = reference if reference is not None else answers[0]
        worst = max(float(np.max(np.abs(a - base))) for a in answers)
        result["max_diff"] = worst
        if running.server.exact and worst > TOLERANCE:
            result["refused"] = (
                f"answers differ from this predictor's FP32 by up to {worst:.2g} "
                f"(> {TOLERANCE:g}): {result['answers']} vs {base.tolist()}"
            )
            print(f"  {running.server.label}: REFUSED, {result['refused']}", flush=True)
            return result
        print(
            f"  {running.server.label}: answer {np.round(answers[0], 5).tolist()}, "
            f"max |diff| from ours FP32 {worst:.2g}",
            flush=True,
        )
        for protocol in args.protocols:
            for concurrency in args.concurrency:
                row = await closed_loop(client.sender(protocol), concurrency, args.seconds)
                result["cells"][f"{protocol} c={concurrency}"] = row
                print(
                    f"  {running.server.label:<15} {PROTOCOL_NAMES[protocol]:<9} "
                    f"c={concurrency:<3} {row['rate']:8.2f} images/s  p50 {row['p50']:7.1f} ms"
                    f"  p99 {row['p99']:7.1f} ms  failed {row['failed']}",
                    flush=True,
                )
    finally:
        await client.close()
    return result


def served_lines(log: str) -> list[str]:
    """What this predictor says it serves: runtime, precision, batching."""
    return [
        line.split("] ", 1)[-1].split("INFO", 1)[-1].strip(" :-")
        for line in log.splitlines()
        if "runtime " in line or "batching: " in line or ("precision" in line and "guard" in line)
    ][:6]


def run_server(server: Server, model: Path, scratch: Path, venvs, pixels, reference, args) -> dict:
    print(f"  {server.label}: starting", flush=True)
    running = start(server, model, scratch, venvs)
    try:
        try:
            wait_ready(running.process, timeout=args.ready_timeout)
        except RuntimeError as exc:
            print(f"  {server.label}: did not become ready: {str(exc)[-2000:]}", flush=True)
            return {"error": f"not ready: {str(exc).splitlines()[0]}"}
        ready = time.monotonic() - running.started
        print(f"  {server.label}: ready in {ready:.1f} s", flush=True)
        result = asyncio.run(check_and_measure(running, pixels, reference, args))
        result["ready_s"] = ready
        result["rss_mb"] = running.peak_rss_mb()
        if server.venv is None:
            result["served"] = served_lines(running.process.log())
        return result
    except Exception as exc:  # a broken server: said, and the run goes on with the next
        print(f"  {server.label}: failed: {exc!r}\n{running.process.log()[-2000:]}", flush=True)
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    finally:
        running.stop()


# -- the results ------------------------------------------------------------------------------


def fmt_rate(result: dict, cell: str) -> str:
    if "error" in result:
        return "failed"
    if "refused" in result:
        return "refused"
    row = result["cells"].get(cell)
    if row is None:
        return ""
    failed = f" ({row['failed']} failed)" if row["failed"] else ""
    return f"{row['rate']:.2f}{failed}"


def report(args, results: dict, env_versions: dict, machine: str) -> list[str]:
    servers = [BY_KEY[key] for key in args.servers]
    peers = [s for s in servers if s.key in PEER_KEYS]
    cells = [f"{p} c={c}" for p in args.protocols for c in args.concurrency]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    command = (
        f".venv/bin/python -m bench.peers --seconds {args.seconds:g} --models "
        f"{','.join(args.models)} --servers {','.join(args.servers)} --concurrency "
        f"{','.join(map(str, args.concurrency))} --protocols {','.join(args.protocols)}"
    )
    lines = [
        "# This predictor against peer servers",
        "",
        f"Command: `{command}`; one run, {when}.  ",
        f"Machine: {machine}.  ",
        f"Client: {', '.join(PROTOCOL_NAMES[p] for p in args.protocols)}; a course photo's "
        "preprocessed FP32 tensor [1, 224, 224, 3] as input `pixels` (gRPC: "
        "`raw_input_contents`; REST: JSON numbers), closed loop, "
        f"{args.seconds:g} s per cell after every client's first answer (bench.throughput."
        "closed_loop); the load generator shares the CPUs with the server.  ",
        f"Checked before measuring: each server's sigmoids on that photo equal this predictor's "
        f"FP32 answer within {TOLERANCE:g} (INT8: its largest difference is reported).",
        "",
    ]
    if args.seconds < 10:
        lines += [
            f"**A short smoke run ({args.seconds:g} s per cell): the figures show that every "
            "server runs, not how fast.** Rerun with the default `--seconds 30` to measure.",
            "",
        ]
    head = ["model", "protocol", "concurrency", *[s.label for s in servers]]
    ratio_of = [s for s in servers if s.key in ("ours", "ours-int8")] if peers else []
    head += [f"{s.label} / best peer" for s in ratio_of]
    lines += ["## Images/s", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for model, by_server in results.items():
        for cell in cells:
            protocol, concurrency = cell.split(" c=")
            row = [model, PROTOCOL_NAMES[protocol], concurrency]
            row += [fmt_rate(by_server.get(s.key, {"error": "-"}), cell) for s in servers]
            peer_rates = [
                by_server[s.key]["cells"][cell]["rate"]
                for s in peers
                if cell in by_server.get(s.key, {}).get("cells", {})
            ]
            for s in ratio_of:
                own = by_server.get(s.key, {}).get("cells", {}).get(cell)
                row.append(f"{own['rate'] / max(peer_rates):.2f}" if own and peer_rates else "n/a")
            lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Latency p50 / p99 (ms)",
        "",
        "| model | protocol | concurrency | " + " | ".join(s.label for s in servers) + " |",
        "|" + " --- |" * (3 + len(servers)),
    ]
    for model, by_server in results.items():
        for cell in cells:
            protocol, concurrency = cell.split(" c=")
            row = [model, PROTOCOL_NAMES[protocol], concurrency]
            for s in servers:
                r = by_server.get(s.key, {}).get("cells", {}).get(cell)
                row.append(f"{r['p50']:.0f} / {r['p99']:.0f}" if r else "")
            lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Each server",
        "",
        "| model | server | ready after s | peak RSS MB (its processes summed) "
        "| max \\|diff\\| from ours FP32 | note |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for model, by_server in results.items():
        for s in servers:
            r = by_server.get(s.key)
            if r is None:
                continue
            note = r.get("error") or r.get("refused") or "; ".join(r.get("served", []))
            ready = f"{r['ready_s']:.1f}" if "ready_s" in r else ""
            rss = f"{r['rss_mb']:.0f}" if "rss_mb" in r else ""
            diff = f"{r['max_diff']:.2g}" if "max_diff" in r else ""
            note = note.replace("|", "\\|")
            lines.append(f"| {model} | {s.label} | {ready} | {rss} | {diff} | {note} |")
    lines += ["", "## How each server was configured", ""]
    lines += [f"- **{s.label}** (`{s.key}`): {s.how}" for s in servers]
    lines += [
        "",
        "Models: `demo` is predictor/default_model/cats-dogs-other-lite0.keras; `vgg16` the "
        "course's VGG16 architecture with random weights (bench.throughput.build_vgg16). "
        "Every server serves it as `cats-dogs-other`.",
        "",
        "## Versions",
        "",
        "| environment | " + " | ".join(VERSION_KEYS) + " |",
        "|" + " --- |" * (1 + len(VERSION_KEYS)),
    ]
    for name, found in env_versions.items():
        lines.append(
            f"| {name} | " + " | ".join(found.get(key, "-") for key in VERSION_KEYS) + " |"
        )
    return lines


VERSION_KEYS = (
    "python", "tensorflow", "keras", "numpy", "openvino", "kserve", "mlserver", "grpcio",
    "uvloop",
)  # fmt: skip


def figure(args, results: dict) -> plotting.Figure:
    """The plot's data, from the run's results: a panel per model, a group of bars per protocol
    and concurrency, a bar per server (images/s; n/a where it was not measured)."""
    servers = [BY_KEY[key] for key in args.servers]
    cells = [f"{p} c={c}" for p in args.protocols for c in args.concurrency]
    title = f"images/s, {args.seconds:g} s per cell" + (" (smoke run)" if args.seconds < 10 else "")
    return plotting.Figure(
        title="",
        panels=tuple(
            plotting.Panel(
                title=f"{model}: {title}",
                kind="bars",
                x=tuple(
                    f"{PROTOCOL_NAMES[c.split(' c=')[0]]}\nc={c.split(' c=')[1]}" for c in cells
                ),
                series=tuple(
                    plotting.Series(
                        s.label,
                        tuple(
                            by_server.get(s.key, {}).get("cells", {}).get(cell, {}).get("rate")
                            for cell in cells
                        ),
                    )
                    for s in servers
                ),
                ylabel="images/s",
            )
            for model, by_server in results.items()
        ),
    )


def machine_line() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs ({model}); load average "
        f"at start {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="window per cell")
    parser.add_argument("--models", default="demo,vgg16", help="of demo, vgg16")
    parser.add_argument("--servers", default=",".join(BY_KEY), help="of %(default)s")
    parser.add_argument("--concurrency", default="1,16", help="clients, each a cell")
    parser.add_argument("--protocols", default="grpc,rest", help="of grpc, rest")
    parser.add_argument("--ready_timeout", type=float, default=900, help="seconds per server")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=PLOT)
    args = parser.parse_args()
    args.models = args.models.split(",")
    asked = args.servers.split(",")
    args.servers = [key for key in BY_KEY if key in asked]  # in the table's order
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.protocols = args.protocols.split(",")
    unknown = (
        [m for m in args.models if m not in ("demo", "vgg16")]
        + [s for s in asked if s not in BY_KEY]
        + [p for p in args.protocols if p not in PROTOCOL_NAMES]
    )
    if unknown:
        parser.error(f"unknown: {', '.join(unknown)} (see --help)")

    machine = machine_line()
    print(f"machine: {machine}", flush=True)
    venvs = {
        name: ensure_venv(name)
        for name in dict.fromkeys(BY_KEY[k].venv for k in args.servers)
        if name is not None
    }
    wanted = ("tensorflow", "keras", "numpy", "grpcio", "uvloop")
    env_versions = {
        ".venv (ours, and the client)": versions(sys.executable, (*wanted, "openvino", "kserve")),
        **{
            f"peers/{name} ({str(venv).replace(str(Path.home()), '~', 1)})": versions(
                venv / "bin" / "python", (*wanted, name)
            )
            for name, venv in venvs.items()
        },
    }
    for name, found in env_versions.items():
        print(f"versions, {name}: {found}", flush=True)

    pixels, photo_name = photo_pixels()
    print(f"input: course photo {photo_name}, preprocessed, {list(pixels.shape)} FP32", flush=True)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as scratch_name:
        scratch = Path(scratch_name)
        for name in args.models:
            model = default_model.PATH if name == "demo" else scratch / "vgg16.keras"
            if name == "vgg16":
                print("vgg16: building the course's architecture, random weights", flush=True)
                subprocess.run(
                    [sys.executable, "-c",
                     f"from bench.throughput import build_vgg16; build_vgg16({str(model)!r})"],
                    cwd=ROOT, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                )  # fmt: skip
            print(f"{name}:", flush=True)
            by_server: dict[str, dict] = {}
            # This predictor's FP32 answer is the reference: it goes first, measured or not.
            order = ["ours", *[k for k in args.servers if k != "ours"]]
            reference = None
            for key in order:
                measuring = key in args.servers
                if not measuring:
                    print("  (ours FP32 started for the reference answer only)", flush=True)
                    args_for = argparse.Namespace(**{**vars(args), "concurrency": []})
                else:
                    args_for = args
                result = run_server(BY_KEY[key], model, scratch, venvs, pixels, reference, args_for)
                if key == "ours":
                    if "answers" not in result or "refused" in result:
                        raise SystemExit(f"no reference answer from this predictor: {result}")
                    reference = np.asarray(next(iter(result["answers"].values())))
                if measuring:
                    by_server[key] = result
            results[name] = by_server

    lines = report(args, results, env_versions, machine)
    which = plotting.save(figure(args, results), args.plot)
    lines += [
        "",
        f"Plot: [{os.path.relpath(args.plot, args.out.parent)}]"
        f"({os.path.relpath(args.plot, args.out.parent)}), drawn with {which}.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
