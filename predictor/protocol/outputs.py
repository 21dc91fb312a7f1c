"""The V2 answer: which output tensors a request gets, and their bytes on REST and gRPC.

The protocol lets a request name the outputs it wants (only those are returned), ask for each
as binary data (REST's binary-data extension) and ask for the top `k` classes of a score output
(the classification extension, as Triton defines it: BYTES `[N, k]` of `"score:index:label"`,
highest first). KServe's `InferResponse` honours requested outputs on REST only and adds
`binary_data_size` to gRPC outputs; this module builds both answers itself, from one `Answer`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import orjson
from kserve import InferRequest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from ..contract import LABELS, OUTPUT_PREDICTION, OUTPUT_VALUES, label_of
from ..errors import BadRequest

OUTPUTS = (OUTPUT_PREDICTION, OUTPUT_VALUES)
CLASSIFIABLE = (OUTPUT_VALUES,)  # scores per label; `prediction` is a label already


@dataclass(frozen=True)
class Tensor:
    """One output as answered: `array` is float32 for FP32, an object array of bytes for BYTES."""

    name: str
    datatype: str
    array: np.ndarray
    binary: bool  # REST: in the binary part of the body (binary-data extension)

    @property
    def shape(self) -> list[int]:
        return list(self.array.shape)

    def as_bytes(self) -> bytes:
        """The tensor's binary form (V2): little-endian numbers, or length-prefixed elements."""
        if self.datatype == "BYTES":
            return b"".join(struct.pack("<I", len(v)) + v for v in self.array.reshape(-1))
        return self.array.astype("<f4", copy=False).tobytes()

    def as_list(self) -> list:
        """The flat, row-major values as JSON carries them (BYTES as text)."""
        flat = self.array.reshape(-1)
        if self.datatype == "BYTES":
            return [v.decode() for v in flat]
        return flat.tolist()


@dataclass(frozen=True)
class Answer:
    id: str
    model_name: str
    model_version: str
    outputs: tuple[Tensor, ...]
    raw: bool  # gRPC: in `raw_output_contents` (as the request's inputs were), else `contents`


@dataclass(frozen=True)
class Wanted:
    """One output a request asks for."""

    name: str
    binary: bool
    classification: int = 0  # top k classes instead of the scores; 0: the scores


def wanted_outputs(request: InferRequest) -> list[Wanted]:
    """The outputs the request asks for, checked; every output when it names none."""
    default_binary = _binary_by_default(request)
    requested = request.request_outputs or []
    if not requested:
        return [Wanted(name, default_binary) for name in OUTPUTS]
    wanted, seen = [], set()
    for output in requested:
        if output.name not in OUTPUTS:
            raise BadRequest(
                f"unknown output {output.name[:64]!r}: this model answers "
                + " and ".join(f"'{name}'" for name in OUTPUTS)
            )
        if output.name in seen:
            raise BadRequest(f"output {output.name!r} is requested twice")
        seen.add(output.name)
        parameters = output.parameters or {}
        binary = parameters.get("binary_data", default_binary)
        if not isinstance(binary, bool):
            raise BadRequest(f"output '{output.name}': binary_data must be true or false")
        wanted.append(Wanted(output.name, binary, _classification(output.name, parameters)))
    return wanted


def _binary_by_default(request: InferRequest) -> bool:
    """REST's `binary_data_output` request parameter (gRPC answers raw as its inputs came)."""
    if request.from_grpc:
        return False
    value = (request.parameters or {}).get("binary_data_output", False)
    if not isinstance(value, bool):
        raise BadRequest("the binary_data_output parameter must be true or false")
    return value


def _classification(name: str, parameters: dict) -> int:
    count = parameters.get("classification", 0)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise BadRequest(f"output '{name}': classification must be a whole number of classes")
    if count and name not in CLASSIFIABLE:
        raise BadRequest(
            f"output '{name}' holds labels, not scores: ask for classification on "
            + " or ".join(f"'{n}'" for n in CLASSIFIABLE)
        )
    return count


def top_classes(values: np.ndarray, k: int) -> np.ndarray:
    """Triton's classification strings, BYTES [N, min(k, labels)]: `"score:index:label"`, the
    highest score first, a tie going to the lower index (as the `prediction` output does)."""
    k = min(k, len(LABELS))
    # A stable sort of the negated scores keeps the lower index first among equal scores.
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    rows = [
        [f"{row[i]:f}:{i}:{LABELS[i]}".encode() for i in indices]
        for row, indices in zip(values.tolist(), order.tolist(), strict=True)
    ]
    return np.array(rows, dtype=object).reshape(len(rows), k)


def build(
    request: InferRequest, values: np.ndarray, model_name: str, version: str, response_id: str
) -> Answer:
    """The answer to `request` from the model's output rows (`values`, float32 [N, labels])."""
    tensors = []
    for want in wanted_outputs(request):
        if want.classification:
            array = top_classes(values, want.classification)
            tensors.append(Tensor(want.name, "BYTES", array, want.binary))
        elif want.name == OUTPUT_PREDICTION:
            labels = [label_of(row).encode() for row in values.tolist()]
            tensors.append(Tensor(want.name, "BYTES", np.array(labels, dtype=object), want.binary))
        else:
            tensors.append(Tensor(want.name, "FP32", values.astype(np.float32), want.binary))
    return Answer(
        id=response_id,
        model_name=model_name,
        model_version=version,
        outputs=tuple(tensors),
        raw=bool(request.from_grpc and request.use_binary_outputs),
    )


@dataclass(frozen=True, slots=True)
class RestBody:
    """A REST answer's body: `payload`, JSON alone, or JSON then the binary outputs, in which
    case `json_length` is the JSON part's length (the Inference-Header-Content-Length)."""

    payload: bytes
    json_length: int | None = None


def to_rest(answer: Answer) -> RestBody:
    """The REST body, and the length of its JSON part when binary outputs follow it."""
    outputs, binaries = [], []
    for tensor in answer.outputs:
        described: dict = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        if tensor.binary:
            data = tensor.as_bytes()
            described["parameters"] = {"binary_data_size": len(data)}
            binaries.append(data)
        else:
            described["data"] = tensor.as_list()
        outputs.append(described)
    header = orjson.dumps(
        {
            "id": answer.id,
            "model_name": answer.model_name,
            "model_version": answer.model_version,
            "outputs": outputs,
        }
    )
    if not binaries:
        return RestBody(payload=header)
    return RestBody(payload=b"".join([header, *binaries]), json_length=len(header))


def to_grpc(answer: Answer) -> pb.ModelInferResponse:
    """The gRPC message: raw contents when the request sent raw inputs, typed contents if not."""
    message = pb.ModelInferResponse(
        id=answer.id, model_name=answer.model_name, model_version=answer.model_version
    )
    for tensor in answer.outputs:
        output = message.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        if answer.raw:
            message.raw_output_contents.append(tensor.as_bytes())
        elif tensor.datatype == "BYTES":
            output.contents.bytes_contents.extend(tensor.array.reshape(-1).tolist())
        else:
            output.contents.fp32_contents.extend(tensor.array.reshape(-1).tolist())
    return message
