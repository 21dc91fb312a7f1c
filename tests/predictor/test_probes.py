"""Probes mean something: live while the model loads, ready only once it is warmed up, both
answered promptly while the model is saturated; failures end the process with a clear line."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from support import images
from support.clients import INFER, MODEL, grpc_stub, json_request
from support.local_pod import listening_addresses
from support.servers import start_predictor, wait_exit, wait_ready


def test_live_answers_while_the_model_loads_and_ready_only_after(predictor):
    polls = predictor.start_polls
    first_ready = next(index for index, (_, _, ready) in enumerate(polls) if ready == 200)
    loading = polls[:first_ready]
    assert loading, "the model was ready before the server answered a single probe"
    assert all(live == 200 and ready == 503 for _, live, ready in loading)
    assert "warmed up" in predictor.log()


def test_the_start_up_log_has_no_grpc_fork_lines(predictor):
    """Nothing forks the server once gRPC's threads run: OpenVINO's telemetry did, at its import
    during the load, and gRPC logged `fork_posix.cc ... skipping fork() handlers` for each fork
    (predictor/__init__.py turns the telemetry off)."""
    assert "warmed up" in predictor.log()
    forks = [line for line in predictor.log().splitlines() if "fork_posix" in line]
    assert not forks, "\n".join(forks[:5])


def test_rest_probes_once_loaded(predictor):
    assert httpx.get(predictor.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(predictor.url + "/v2/health/ready").json() == {"ready": True}
    ready = httpx.get(f"{predictor.url}/v2/models/{MODEL}/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True


def test_grpc_probes_agree_with_rest(predictor):
    channel, stub = grpc_stub(predictor.grpc_target)
    with channel:
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live is True
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready is True
        assert stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=5).ready is True
        with pytest.raises(grpc.RpcError) as error:
            stub.ModelReady(pb.ModelReadyRequest(name="dogs-only"), timeout=5)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


def _probe_latencies_while_saturated(url: str, concurrency: int) -> tuple[list, list]:
    """Probe live and model-ready back to back for as long as `concurrency` requests of 16
    photo-sized JPEGs each keep the model busy; return the probe latencies and the statuses.

    The load comes from threads with a pre-encoded body, so the client's own work cannot delay
    the prober's measurements."""
    photos = [images.rgb_jpeg(640, 480, seed=n) for n in range(16)]
    body = json.dumps(json_request(photos)).encode()
    headers = {"content-type": "application/json"}

    def infer(_: int) -> int:
        return httpx.post(url + INFER, content=body, headers=headers, timeout=300).status_code

    probe_times: list[float] = []
    return _measure(url, infer, concurrency, probe_times)


def _measure(url, infer, concurrency, probe_times):
    with ThreadPoolExecutor(concurrency) as pool, httpx.Client(base_url=url, timeout=10) as prober:
        inferences = [pool.submit(infer, n) for n in range(concurrency)]
        time.sleep(0.5)  # let the requests arrive and pile up
        while not all(future.done() for future in inferences):
            for path in ("/v2/health/live", f"/v2/models/{MODEL}/ready"):
                started = time.perf_counter()
                assert prober.get(path).status_code == 200
                probe_times.append(time.perf_counter() - started)
            time.sleep(0.05)
        statuses = [future.result() for future in inferences]
    assert len(probe_times) >= 10, "the inferences finished before the probes: not saturated"
    return probe_times, statuses


def test_probes_answer_within_200_ms_while_16_requests_saturate_the_model(predictor):
    probe_times, statuses = _probe_latencies_while_saturated(predictor.url, 16)
    assert statuses == [200] * 16
    assert max(probe_times) < 0.2, f"slowest probe {max(probe_times) * 1000:.0f} ms"


def test_ports_listen_on_loopback_only_by_default(predictor):
    for port in (predictor.http_port, predictor.grpc_port):
        assert listening_addresses(port) == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("make_path", "message"),
    [
        (lambda tmp: tmp / "missing.keras", "does not exist"),
        (lambda tmp: tmp, "no .keras file in folder"),
        (lambda tmp: _write(tmp / "final_model.keras", b"not a zip"), "is not a loadable Keras"),
    ],
    ids=["missing file", "empty folder", "not a Keras file"],
)
def test_a_model_that_cannot_load_ends_the_process_with_one_clear_line(
    tmp_path, make_path, message
):
    process = start_predictor(make_path(tmp_path), tmp_path)
    assert wait_exit(process) == 1
    lines = process.log().splitlines()
    errors = [line for line in lines if " ERROR " in line]
    assert len(errors) == 1, process.log()[-3000:]
    assert lines[-1] == errors[0], "nothing after the one line"
    assert "Traceback" not in process.log() and "Event loop is closed" not in process.log()
    assert "cannot load model cats-dogs-other" in errors[0]
    assert message in errors[0]


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_a_model_of_the_wrong_shape_is_refused(tmp_path):
    import keras

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    model.save(tmp_path / "wrong.keras")
    process = start_predictor(tmp_path / "wrong.keras", tmp_path)
    assert wait_exit(process) == 1
    assert "the model must take [N, 224, 224, 3] and give [N, 3]" in process.log()


def test_sigterm_stops_the_server_cleanly(model_file, tmp_path):
    process = wait_ready(start_predictor(model_file, tmp_path))
    started = time.monotonic()
    process.popen.terminate()
    try:
        code = process.popen.wait(30)
    except subprocess.TimeoutExpired:
        process.popen.kill()
        pytest.fail("the predictor did not stop within 30 s of SIGTERM")
    assert code in (0, -15)
    assert time.monotonic() - started < 30
