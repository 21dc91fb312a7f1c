"""The V2 clients nobody here wrote, behind one small interface, for the conformance tests.

Four clients: NVIDIA's `tritonclient` (HTTP and gRPC) and KServe's own `InferenceRESTClient` and
`InferenceGRPCClient`. Each adapter speaks to one door (the predictor, or the proxy with a
token) and answers in plain Python, so one test can run the same call through every client
and compare; a refusal is `Refused(status, message)` whichever client saw it. KServe's clients
are async and have no metadata call; tritonclient has both.

tritonclient cannot share a process (or an environment) with KServe: its gRPC stubs register the
same protobuf package (`inference`) under other file names, and it requires an older ml-dtypes
than the predictor's TensorFlow. It runs in a worker process (`TritonWorker`,
`support/triton_worker.py`) under the interpreter of its own environment, `.venv/v2-clients`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import pickle
import queue
import struct
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MODEL = "cats-dogs-other"
ROOT = Path(__file__).resolve().parents[1]
CLIENTS_PYTHON = ROOT / ".venv" / "v2-clients" / "bin" / "python"


@dataclass(frozen=True)
class Door:
    """Where a client connects, and the headers it must send there (a token at the proxy)."""

    name: str
    http: str  # host:port
    grpc: str  # host:port
    header_items: tuple[tuple[str, str], ...] = ()

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.header_items)


class Refused(Exception):
    """A call the server refused, as any client reports it: the HTTP status ("404") or the
    gRPC code's name ("NOT_FOUND"), and the server's message."""

    def __init__(self, status: str, message: str):
        super().__init__(status, message)
        self.status, self.message = status, message

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


@dataclass(frozen=True)
class Call:
    """One inference request, as the test means it."""

    images: list[bytes] = field(default_factory=list)
    pixels: np.ndarray | None = None
    binary_inputs: bool = True  # images as raw bytes (binary extension / raw contents)
    outputs: tuple[str, ...] = ()  # requested outputs; () for all
    class_count: int = 0  # classification on `values`
    binary_outputs: bool = True  # REST only
    version: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class Result:
    id: str
    model_version: str
    arrays: dict[str, np.ndarray]


def _image_tensor(call: Call, protocol: str) -> np.ndarray:
    """The `image` elements: file bytes, except in REST JSON, where the contract has base64 text
    (gRPC's typed `bytes_contents` carry the file bytes as they are)."""
    if call.binary_inputs or protocol == "grpc":
        return np.array(call.images, dtype=object)
    return np.array([base64.b64encode(i).decode() for i in call.images], dtype=object)


def _as_text(array: np.ndarray) -> np.ndarray:
    """BYTES outputs as str, whichever of bytes or str a client hands back."""
    if array.dtype != object:
        return array
    return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(array)


class TritonWorker:
    """The tritonclient process (see the module's docstring): one call at a time."""

    def __init__(self, python: Path = CLIENTS_PYTHON):
        self.process = subprocess.Popen(
            [str(python), "-m", "support.triton_worker"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._lock = threading.Lock()

    def client(self, protocol: str, door: Door, **options) -> Triton:
        return Triton(self, protocol, door, tuple(sorted(options.items())))

    def call(self, key: tuple, method: str, args: tuple, kwargs: dict):
        data = pickle.dumps((key, method, args, kwargs))
        assert self.process.stdin and self.process.stdout
        with self._lock:
            self.process.stdin.write(struct.pack("<I", len(data)) + data)
            self.process.stdin.flush()
            header = self.process.stdout.read(4)
            if len(header) < 4:
                raise RuntimeError(f"the tritonclient worker exited ({self.process.poll()})")
            (size,) = struct.unpack("<I", header)
            status, value = pickle.loads(self.process.stdout.read(size))
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait(10)


class Triton:
    """A tritonclient in the worker: every method of `_TritonClient`, called there."""

    def __init__(self, worker: TritonWorker, protocol: str, door: Door, options: tuple):
        self.worker, self.protocol, self.door, self.options = worker, protocol, door, options
        self.name = f"tritonclient.{protocol}"

    def __getattr__(self, method: str):
        def in_worker(*args, **kwargs):
            return self.worker.call((self.protocol, self.door, self.options), method, args, kwargs)

        return in_worker


_CLIENTS: dict = {}


def run_in_worker(key: tuple, method: str, args: tuple, kwargs: dict):
    """In the worker: call `method` of the tritonclient for `key` (made on first use)."""
    from tritonclient.utils import InferenceServerException

    if key not in _CLIENTS:
        protocol, door, options = key
        _CLIENTS[key] = _TritonClient(protocol, door, **dict(options))
    try:
        return getattr(_CLIENTS[key], method)(*args, **kwargs)
    except InferenceServerException as exc:
        status = str(exc.status()).removeprefix("StatusCode.")
        raise Refused(status, exc.message()) from None


class _TritonClient:
    """tritonclient over HTTP or gRPC (`protocol` "http" or "grpc"); runs in the worker."""

    def __init__(self, protocol: str, door: Door, **infer_options):
        import tritonclient.grpc as grpc_client
        import tritonclient.http as http_client

        self.module = http_client if protocol == "http" else grpc_client
        self.protocol = protocol
        url = door.http if protocol == "http" else door.grpc
        self.client = self.module.InferenceServerClient(url)
        self.door = door
        self.infer_options = infer_options

    @property
    def headers(self) -> dict[str, str]:
        """A fresh dict per call: tritonclient's HTTP `infer` adds its own headers to the one
        it is given (a binary call's Inference-Header-Content-Length would stick)."""
        if self.protocol == "http":
            return self.door.headers
        return {k.lower(): v for k, v in self.door.headers.items()}

    def live(self) -> bool:
        return self.client.is_server_live(headers=self.headers)

    def ready(self) -> bool:
        return self.client.is_server_ready(headers=self.headers)

    def model_ready(self, version: str = "") -> bool:
        return self.client.is_model_ready(MODEL, version, headers=self.headers)

    def server_metadata(self) -> dict:
        answer = self.client.get_server_metadata(headers=self.headers)
        if self.protocol == "http":
            return answer
        return {
            "name": answer.name,
            "version": answer.version,
            "extensions": list(answer.extensions),
        }

    def metadata(self, version: str = "") -> dict:
        answer = self.client.get_model_metadata(MODEL, version, headers=self.headers)
        if self.protocol == "http":
            return answer
        return {"name": answer.name, "versions": list(answer.versions), "platform": answer.platform}

    def _inputs(self, call: Call) -> list:
        if call.pixels is not None:
            tensor = self.module.InferInput("pixels", list(call.pixels.shape), "FP32")
            data = call.pixels
        else:
            tensor = self.module.InferInput("image", [len(call.images)], "BYTES")
            data = _image_tensor(call, self.protocol)
        if self.protocol == "http":
            tensor.set_data_from_numpy(data, binary_data=call.binary_inputs)
        else:
            tensor.set_data_from_numpy(data)
        return [tensor]

    def _outputs(self, call: Call) -> list | None:
        names = call.outputs
        if not names and self.protocol == "http" and not call.binary_outputs:
            names = ("prediction", "values")  # tritonclient asks for binary unless told not to
        if not names:
            return None
        requested = []
        for name in names:
            count = call.class_count if name == "values" else 0
            if self.protocol == "http":
                requested.append(
                    self.module.InferRequestedOutput(
                        name, binary_data=call.binary_outputs, class_count=count
                    )
                )
            else:
                requested.append(self.module.InferRequestedOutput(name, class_count=count))
        return requested

    def infer(self, call: Call, *, asynchronous: bool = False) -> Result:
        options = dict(
            model_version=call.version,
            outputs=self._outputs(call),
            request_id=call.request_id,
            headers=self.headers,
            **self.infer_options,
        )
        if not asynchronous:
            answer = self.client.infer(MODEL, self._inputs(call), **options)
        elif self.protocol == "http":
            answer = self.client.async_infer(MODEL, self._inputs(call), **options).get_result()
        else:
            answer = self._grpc_async(call, options)
        response = answer.get_response(as_json=True) if self.protocol == "grpc" else None
        described = response or answer.get_response()
        names = [o["name"] for o in described["outputs"]]
        return Result(
            id=described.get("id", ""),
            model_version=described.get("model_version", ""),
            arrays={name: _as_text(answer.as_numpy(name)) for name in names},
        )

    def model_config(self):
        return self.client.get_model_config(MODEL, headers=self.headers)

    def stream_infer(self, call: Call) -> list[str]:
        """Triton's ModelStreamInfer: the errors the stream's callback saw."""
        from tritonclient.utils import InferenceServerException

        errors: list[str] = []
        self.client.start_stream(
            lambda result, error: errors.append(str(error)), headers=self.headers
        )
        # If the stream has ended already, this raises; its callback got the reason.
        with contextlib.suppress(InferenceServerException):
            self.client.async_stream_infer(MODEL, self._inputs(call))
        self.client.stop_stream()
        return errors

    def _grpc_async(self, call: Call, options: dict):
        done: queue.Queue = queue.Queue()
        self.client.async_infer(
            MODEL, self._inputs(call), lambda result, error: done.put((result, error)), **options
        )
        result, error = done.get(timeout=60)
        if error is not None:
            raise error
        return result


class KServe:
    """kserve's InferenceRESTClient or InferenceGRPCClient (`protocol` "http" or "grpc")."""

    def __init__(self, protocol: str, door: Door):
        self.protocol = protocol
        self.name = "kserve." + ("InferenceRESTClient" if protocol == "http" else "GRPCClient")
        self.door = door

    def _run(self, use):
        async def with_client():
            import grpc
            import httpx
            from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig

            if self.protocol == "http":
                client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
                headers = dict(self.door.headers)
            else:
                client = InferenceGRPCClient(self.door.grpc, timeout=60)
                headers = [(k.lower(), v) for k, v in self.door.headers.items()]
            try:
                return await use(client, headers)
            except grpc.aio.AioRpcError as exc:
                raise Refused(exc.code().name, exc.details() or "") from None
            except httpx.HTTPStatusError as exc:
                raise Refused(str(exc.response.status_code), exc.response.json()["error"]) from None
            finally:
                await client.close()

        return asyncio.run(with_client())

    @property
    def base_url(self) -> str:
        return f"http://{self.door.http}"

    def live(self) -> bool:
        if self.protocol == "http":
            return self._run(lambda c, h: c.is_server_live(self.base_url, headers=h))
        return self._run(lambda c, h: c.is_server_live(headers=h))

    def ready(self) -> bool:
        if self.protocol == "http":
            return self._run(lambda c, h: c.is_server_ready(self.base_url, headers=h))
        return self._run(lambda c, h: c.is_server_ready(headers=h))

    def model_ready(self, version: str = "") -> bool:
        assert not version, "KServe's clients cannot name a version"
        if self.protocol == "http":
            return self._run(lambda c, h: c.is_model_ready(self.base_url, MODEL, headers=h))
        return self._run(lambda c, h: c.is_model_ready(MODEL, headers=h))

    def _request(self, call: Call):
        from kserve import InferInput, InferRequest
        from kserve.protocol.infer_type import RequestedOutput

        if call.pixels is not None:
            tensor = InferInput("pixels", list(call.pixels.shape), "FP32")
            tensor.set_data_from_numpy(call.pixels, binary_data=call.binary_inputs)
        else:
            tensor = InferInput("image", [len(call.images)], "BYTES")
            tensor.set_data_from_numpy(
                _image_tensor(call, self.protocol), binary_data=call.binary_inputs
            )
        requested = None
        if call.outputs:
            requested = []
            for name in call.outputs:
                parameters: dict = {"binary_data": call.binary_outputs}
                if name == "values" and call.class_count:
                    parameters["classification"] = call.class_count
                requested.append(RequestedOutput(name, parameters))
        return InferRequest(
            model_name=MODEL,
            infer_inputs=[tensor],
            request_id=call.request_id or None,
            request_outputs=requested,
            parameters={"binary_data_output": call.binary_outputs},
            model_version=call.version or None,
        )

    def infer(self, call: Call, *, asynchronous: bool = True) -> Result:
        assert not call.version or self.protocol == "grpc", "KServe's REST client has no version"
        request = self._request(call)
        if self.protocol == "http":
            answer = self._run(lambda c, h: c.infer(self.base_url, request, MODEL, headers=h))
        else:
            answer = self._run(lambda c, h: c.infer(request, headers=h))
        return Result(
            id=answer.id,
            model_version=answer.model_version or "",
            arrays={o.name: _as_text(o.as_numpy()) for o in answer.outputs},
        )
