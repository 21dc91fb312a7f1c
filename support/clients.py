"""Real clients for the predictor's protocols: V2 REST (JSON and binary), V2 gRPC, V1."""

from __future__ import annotations

import base64
import json
import struct
import time

import grpc
import httpx
import numpy as np
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

MODEL = "cats-dogs-other"
INFER = f"/v2/models/{MODEL}/infer"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def json_request(images: list[bytes], **extra) -> dict:
    inputs = [{"name": "image", "shape": [len(images)], "datatype": "BYTES"}]
    inputs[0]["data"] = [b64(image) for image in images]
    return {"inputs": inputs, **extra}


def prefixed(images: list[bytes]) -> bytes:
    """The V2 serialisation of a BYTES tensor: 4-byte little-endian length, then the bytes."""
    return b"".join(struct.pack("<I", len(image)) + image for image in images)


def binary_body(images: list[bytes], *, length_prefixed: bool, **extra) -> tuple[bytes, dict]:
    """A REST binary-extension body: JSON header, then the image bytes."""
    raw = prefixed(images) if length_prefixed else b"".join(images)
    header = {
        "inputs": [
            {
                "name": "image",
                "shape": [len(images)],
                "datatype": "BYTES",
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        **extra,
    }
    header_bytes = json.dumps(header).encode()
    headers = {
        "Inference-Header-Content-Length": str(len(header_bytes)),
        "Content-Type": "application/octet-stream",
    }
    return header_bytes + raw, headers


def values_of(answer: dict) -> tuple[list[str], np.ndarray]:
    """(labels, values) from a V2 JSON answer."""
    outputs = {output["name"]: output for output in answer["outputs"]}
    values = np.asarray(outputs["values"]["data"], dtype=np.float32)
    return outputs["prediction"]["data"], values.reshape(outputs["values"]["shape"])


def parse_binary_answer(response: httpx.Response) -> tuple[list[str], np.ndarray]:
    """(labels, values) from a V2 REST answer in the binary-data extension."""
    json_length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:json_length])
    offset, outputs = json_length, {}
    for output in header["outputs"]:
        size = output["parameters"]["binary_data_size"]
        outputs[output["name"]] = (output, response.content[offset : offset + size])
        offset += size
    labels, raw = [], outputs["prediction"][1]
    position = 0
    while position < len(raw):
        (length,) = struct.unpack_from("<I", raw, position)
        labels.append(raw[position + 4 : position + 4 + length].decode())
        position += 4 + length
    values_header, values_raw = outputs["values"]
    values = np.frombuffer(values_raw, dtype="<f4").reshape(values_header["shape"])
    return labels, values


def grpc_stub(target: str) -> tuple[grpc.Channel, GRPCInferenceServiceStub]:
    channel = grpc.insecure_channel(
        target, options=[("grpc.max_send_message_length", 128 * 1024 * 1024)]
    )
    return channel, GRPCInferenceServiceStub(channel)


def grpc_image_request(images: list[bytes], *, raw: bool, model: str = MODEL):
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="image", datatype="BYTES", shape=[len(images)]
    )
    if raw:
        return pb.ModelInferRequest(
            model_name=model, inputs=[tensor], raw_input_contents=[prefixed(images)]
        )
    tensor.contents.bytes_contents.extend(images)
    return pb.ModelInferRequest(model_name=model, inputs=[tensor])


def send_photos(target: str, token: str, photos: list[bytes], per_request: int = 10) -> list[str]:
    """The photos to ModelInfer through the proxy's gRPC port `target`, `per_request` to a
    call (raw contents), with `token`: the labels answered, in order."""
    labels: list[str] = []
    channel, stub = grpc_stub(target)
    with channel:
        for start in range(0, len(photos), per_request):
            request = grpc_image_request(photos[start : start + per_request], raw=True)
            answer = stub.ModelInfer(
                request, metadata=[("authorization", f"Bearer {token}")], timeout=60
            )
            labels.extend(grpc_values(answer)[0])
    return labels


def grpc_values(response: pb.ModelInferResponse) -> tuple[list[str], np.ndarray]:
    """(labels, values) from a gRPC answer, contents or raw_output_contents alike."""
    result = {}
    for index, output in enumerate(response.outputs):
        if response.raw_output_contents:
            raw = response.raw_output_contents[index]
            if output.datatype == "BYTES":
                items, position = [], 0
                while position < len(raw):
                    (length,) = struct.unpack_from("<I", raw, position)
                    items.append(raw[position + 4 : position + 4 + length])
                    position += 4 + length
                result[output.name] = items
            else:
                result[output.name] = np.frombuffer(raw, dtype="<f4").reshape(output.shape)
        elif output.datatype == "BYTES":
            result[output.name] = list(output.contents.bytes_contents)
        else:
            result[output.name] = np.asarray(output.contents.fp32_contents, dtype=np.float32)
            result[output.name] = result[output.name].reshape(output.shape)
    labels = [item.decode() for item in result["prediction"]]
    return labels, result["values"]


def send_headers_only(port: int, head: str) -> tuple[str, str]:
    """Send an HTTP request head announcing a body, send no body, and read the whole answer:
    (status line, body). For limits that must answer before the body is sent."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        header, _, body = answer.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in header.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        while len(body) < length:
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
    return header.split(b"\r\n")[0].decode(), body.decode()


def raw_exchange(port: int, data: bytes, *, wait: float = 5.0, half_close: bool = False) -> bytes:
    """Send `data` as is on a fresh connection and return every byte the server sends back
    until it closes the connection or `wait` seconds pass. For requests an HTTP client would
    normalise (bare LF, control bytes, repeated headers, `Expect`)."""
    import socket

    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except TimeoutError:
            pass
    return answer


def status_of(answer: bytes) -> int:
    """The status code of the first HTTP answer in raw bytes (0 if there is none)."""
    if not answer.startswith(b"HTTP/1."):
        return 0
    return int(answer.split(b" ", 2)[1])


def raw_grpc_call(
    target: str,
    path: bytes,
    metadata: list[tuple[bytes, bytes]],
    body: bytes | None = b"\0" * 5,
    wait: float = 5.0,
    close: bool = True,
) -> tuple[str | None, str]:
    """One gRPC call over HTTP/2 written by hand (the `h2` library, no validation), for what
    grpcio refuses to send: bytes that are not UTF-8 in metadata, broken framing. Returns
    (grpc-status, grpc-message), or (None, "no answer") if none came within `wait` seconds.
    `body` None sends no message; `close` False leaves the stream open (a client that stalls)."""
    import socket

    import h2.config
    import h2.connection
    import h2.events

    host, _, port = target.rpartition(":")
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
    )
    connection = h2.connection.H2Connection(config=config)
    headers = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", b"x"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        *metadata,
    ]
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        connection.initiate_connection()
        connection.send_headers(1, headers, end_stream=body is None and close)
        if body is not None:
            connection.send_data(1, body, end_stream=close)
        sock.sendall(connection.data_to_send())
        deadline = time.monotonic() + wait
        answer: dict[bytes, bytes] = {}
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    answer.update(dict(event.headers))
                if isinstance(event, h2.events.StreamReset) and b"grpc-status" not in answer:
                    return None, f"stream reset ({event.error_code})"
            sock.sendall(connection.data_to_send())
            if b"grpc-status" in answer:
                return answer[b"grpc-status"].decode(), answer.get(b"grpc-message", b"").decode()
    return None, "no answer"
