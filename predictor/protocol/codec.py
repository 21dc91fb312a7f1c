"""Protocol tensors in, protocol tensors out.

Turns a V2 `InferRequest` (REST JSON, REST binary extension, gRPC) or a V1 body into an
`ImageBatch`, and the model's output rows into V1's and the course's answers (V2's answer is
built by `outputs.py`). No decoding of pixels happens here: that is `imaging.py`'s job, run off
the event loop.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import orjson
import pydantic
from kserve import InferRequest
from kserve.protocol.infer_type import InferInput
from kserve.protocol.rest.v2_datamodels import InferenceRequest

from .. import kserve_glue
from ..contract import INPUT_IMAGE, INPUT_PIXELS, PIXELS_SHAPE, label_of
from ..errors import BadImage, BadRequest, ImageTooLarge, TooLarge

ImageData = bytes | str  # raw file bytes, or base64 text (REST JSON, V1)


@dataclass(frozen=True)
class ImageBatch:
    """What a request asks to classify: encoded images, or a ready pixel tensor."""

    images: tuple[ImageData, ...] = ()
    pixels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images) if self.pixels is None else int(self.pixels.shape[0])


def _expected_inputs() -> str:
    return (
        f"'{INPUT_IMAGE}' (BYTES [N], encoded image files) or "
        f"'{INPUT_PIXELS}' (FP32 [N, {', '.join(map(str, PIXELS_SHAPE))}])"
    )


def batch_from_infer_request(request: InferRequest, max_images: int) -> ImageBatch:
    """Read the one input of a V2 request, checking name, datatype, shape and count."""
    if len(request.inputs) != 1:
        raise BadRequest(
            f"expected exactly one input, {_expected_inputs()}; got {len(request.inputs)}"
        )
    tensor = request.inputs[0]
    if tensor.name == INPUT_IMAGE:
        batch = ImageBatch(images=_image_elements(tensor))
    elif tensor.name == INPUT_PIXELS:
        batch = ImageBatch(pixels=_pixel_tensor(tensor))
    else:
        raise BadRequest(
            f"unknown input {tensor.name[:64]!r}: this model takes {_expected_inputs()}"
        )
    check_count(len(batch), max_images)
    return batch


def batch_from_v1(body: object, max_images: int) -> ImageBatch:
    """Read a V1 body: `{"instances": [{"image": {"b64": "..."}}, ...]}`.

    KServe hands the body over undecoded when the client's Content-Type is not JSON.
    """
    if isinstance(body, bytes | str):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        raise BadRequest('expected a JSON object {"instances": [{"image": {"b64": "..."}}]}')
    instances = body["instances"]
    check_count(len(instances), max_images)
    images = []
    for index, instance in enumerate(instances):
        image = instance.get("image") if isinstance(instance, dict) else None
        b64 = image.get("b64") if isinstance(image, dict) else None
        if not isinstance(b64, str):
            raise BadImage(index, 'expected {"image": {"b64": "<base64 of the image file>"}}')
        images.append(b64)
    return ImageBatch(images=tuple(images))


def check_count(count: int, max_images: int) -> None:
    if count == 0:
        raise BadRequest("the request holds no image")
    if count > max_images:
        raise TooLarge(f"{count} images is over the limit of {max_images} images per request")


def image_bytes(index: int, element: ImageData, max_bytes: int) -> bytes:
    """The file bytes of one element: raw as sent, or base64-decoded text (strictly checked)."""
    if isinstance(element, bytes):
        return element
    # Base64 grows data by 4/3: refuse before decoding what would be over the limit anyway.
    if len(element) * 3 // 4 > max_bytes + 3:
        raise ImageTooLarge(
            index, f"about {len(element) * 3 // 4} bytes is over the limit of {max_bytes} bytes"
        )
    try:
        return base64.b64decode(element, validate=True)
    except (binascii.Error, ValueError):
        raise BadImage(index, "invalid base64: standard alphabet, padded, no line breaks") from None


def _image_elements(tensor: InferInput) -> tuple[ImageData, ...]:
    if tensor.datatype != "BYTES":
        raise BadRequest(f"input '{INPUT_IMAGE}' must be BYTES, got {tensor.datatype}")
    if len(tensor.shape) != 1:
        raise BadRequest(f"input '{INPUT_IMAGE}' must have shape [N], got {list(tensor.shape)}")
    count = tensor.shape[0]
    raw = raw_contents(tensor)
    elements = split_bytes_elements(raw, count) if raw is not None else list(tensor.data or [])
    if len(elements) != count:
        raise BadRequest(
            f"input '{INPUT_IMAGE}' declares shape [{count}] but holds {len(elements)} elements"
        )
    for index, element in enumerate(elements):
        if not isinstance(element, bytes | str):
            raise BadImage(index, "each element must be an encoded image (base64 text in JSON)")
    return tuple(elements)


def _pixel_tensor(tensor: InferInput) -> np.ndarray:
    if tensor.datatype != "FP32":
        raise BadRequest(f"input '{INPUT_PIXELS}' must be FP32, got {tensor.datatype}")
    shape = list(tensor.shape)
    if len(shape) != 4 or tuple(shape[1:]) != PIXELS_SHAPE:
        raise BadRequest(
            f"input '{INPUT_PIXELS}' must have shape [N, {', '.join(map(str, PIXELS_SHAPE))}], "
            f"got {shape}"
        )
    expected = math.prod(shape)  # Python's integers: no overflow for a hostile shape
    raw = raw_contents(tensor)
    try:
        if raw is not None:
            flat = np.frombuffer(raw, dtype="<f4")
        else:
            flat = np.asarray(tensor.data, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise BadRequest(f"input '{INPUT_PIXELS}' must hold numbers only") from None
    if flat.size != expected:
        raise BadRequest(
            f"input '{INPUT_PIXELS}' declares shape {shape} ({expected} values) "
            f"but holds {flat.size} values"
        )
    pixels = flat.reshape(shape).astype(np.float32, copy=False)
    if not np.isfinite(pixels).all():
        raise BadRequest(f"input '{INPUT_PIXELS}' holds NaN or infinite values")
    return pixels


def raw_contents(tensor: InferInput) -> bytes | None:
    """The tensor's binary payload (gRPC `raw_input_contents`, REST binary extension), if any."""
    return kserve_glue.raw_data(tensor)


def split_bytes_elements(raw: bytes, count: int) -> list[bytes]:
    """Split a binary BYTES tensor into its elements.

    The V2 protocol serialises each element as a 4-byte little-endian length then the bytes. A
    client sending one image may also send the file as is; an image file never starts with a
    length prefix that spans exactly the rest of the buffer, so the two forms cannot be confused.
    """
    elements: list[bytes] = []
    offset = 0
    while offset + 4 <= len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        if offset + 4 + length > len(raw):
            break
        elements.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    if offset == len(raw) and len(elements) == count:
        return elements
    if count == 1:
        return [raw]
    raise BadRequest(
        f"binary input '{INPUT_IMAGE}' is not {count} length-prefixed elements "
        "(each a 4-byte little-endian length, then the image file)"
    )


def prediction_rows(values: np.ndarray) -> list[dict]:
    """The course's answer per image: `{"prediction": "Cat", "values": [v0, v1, v2]}`."""
    return [{"prediction": label_of(row), "values": row} for row in values.tolist()]


def infer_request_from_rest(body: bytes, json_length: str | None, model_name: str) -> InferRequest:
    """Parse a V2 REST body: plain JSON, or the binary-data extension.

    With the extension (`Inference-Header-Content-Length`), the JSON header is followed by each
    binary input's bytes in order, sized by its `binary_data_size` parameter. Unlike kserve
    0.21's own parser, BYTES inputs stay bytes: an image file is not UTF-8 text.
    """
    header, binaries = _split_binary_body(body, json_length) if json_length else (body, b"")
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    del header
    if not isinstance(document, dict):
        raise BadRequest("the request body must be a JSON object with an 'inputs' list")
    raw_by_input = _take_binary_inputs(document, binaries) if json_length else {}
    raw_by_input.update(_take_json_pixels(document, binary=raw_by_input.keys()))
    try:
        parsed = InferenceRequest.model_validate(document)
    except pydantic.ValidationError as exc:
        raise BadRequest(f"not a V2 inference request: {_describe(exc)}") from None
    request = kserve_glue.from_inference_request(parsed, model_name)
    for index, raw in raw_by_input.items():
        kserve_glue.set_raw_data(request.inputs[index], raw)
    return request


# What parsing a JSON tensor costs at its peak, per value: orjson's Python objects (32 bytes a
# float in a flat list, 61 a zero in nested lists, measured) before they become float32.
JSON_BYTES_PER_VALUE = 64
PIXEL_VALUES = int(np.prod(PIXELS_SHAPE))


def json_cost(body: bytes, json_length: str | None, max_images: int) -> int:
    """Bytes parsing this V2 REST body's JSON will hold, from a bound on how many values it can
    carry (one more than its commas: a C scan, nothing parsed); TooLarge when that bound is more
    than `max_images` pixel tensors could need. Checked before the body is parsed, so a
    60 MiB `[0,0,...]` costs a scan, not a gigabyte of Python integers."""
    header = _split_binary_body(body, json_length)[0] if json_length else body
    values = header.count(b",") + 1
    most = max_images * PIXEL_VALUES + 1024  # and a few for the rest of the document
    if values > most:
        raise TooLarge(
            f"the JSON body holds up to {values} values, more than {max_images} images' "
            f"{PIXEL_VALUES} pixel values each ({most}); send pixels in binary (the binary-data "
            "extension or gRPC) or fewer images"
        )
    return values * JSON_BYTES_PER_VALUE


# A V1 instance is `{"image": {"b64": "..."}}`: two objects and a comma (or a few more keys).
V1_TOKENS_PER_IMAGE = 16


def check_v1_structure(body: bytes, max_images: int) -> None:
    """TooLarge for a V1 JSON body with more objects, lists and values than `max_images`
    instances have, before it is parsed (one C scan per character)."""
    tokens = body.count(b",") + body.count(b"[") + body.count(b"{")
    most = max_images * V1_TOKENS_PER_IMAGE + 64
    if tokens > most:
        raise TooLarge(
            f"the JSON body holds up to {tokens} values, lists and objects, more than "
            f"{max_images} instances need ({most})"
        )


def _take_json_pixels(document: dict, binary: Collection[int] = ()) -> dict[int, bytes]:
    """The `pixels` inputs sent as JSON numbers, as float32 bytes, each checked against its
    declared shape; their `data` emptied. KServe's request models would otherwise validate and
    copy every number as a Python object (256 bytes a value at the peak, measured)."""
    taken: dict[int, bytes] = {}
    inputs = document.get("inputs")
    for index, tensor in enumerate(inputs if isinstance(inputs, list) else []):
        if index in binary or not isinstance(tensor, dict) or tensor.get("name") != INPUT_PIXELS:
            continue  # sent in binary: its bytes are taken already
        data, shape = tensor.get("data"), tensor.get("shape")
        if tensor.get("datatype") != "FP32" or not isinstance(data, list):
            continue  # refused later, by the same checks as any other request
        if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
            continue
        try:
            values = np.asarray(data, dtype=np.float32)
        except (TypeError, ValueError):
            raise BadRequest(f"input '{INPUT_PIXELS}' must hold numbers only") from None
        expected = math.prod(shape)  # Python's integers: no overflow for a hostile shape
        if values.size != expected:
            raise BadRequest(
                f"input '{INPUT_PIXELS}' declares shape {shape} ({expected} values) "
                f"but holds {values.size} values"
            )
        taken[index] = values.astype("<f4", copy=False).tobytes()
        tensor["data"] = []
    return taken


def _split_binary_body(body: bytes, json_length: str) -> tuple[bytes, bytes]:
    try:
        length = int(json_length)
    except ValueError:
        raise BadRequest(
            f"Inference-Header-Content-Length must be a number of bytes, got {json_length[:40]!r}"
        ) from None
    if not 0 < length <= len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length is {length} but the body has {len(body)} bytes"
        )
    return body[:length], body[length:]


def _take_binary_inputs(document: dict, binaries: bytes) -> dict[int, bytes]:
    """Cut each binary input's bytes off `binaries`; give it empty `data` so it validates."""
    taken: dict[int, bytes] = {}
    offset = 0
    inputs = document.get("inputs")
    for index, tensor in enumerate(inputs if isinstance(inputs, list) else []):
        params = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(binaries):
            raise BadRequest(
                f"input {index}: binary_data_size {size!r} does not fit the "
                f"{len(binaries) - offset} binary bytes left in the body"
            )
        taken[index] = binaries[offset : offset + size]
        tensor.setdefault("data", [])
        offset += size
    if offset != len(binaries):
        raise BadRequest(
            f"{len(binaries) - offset} bytes after the binary inputs are not claimed by any "
            "input's binary_data_size"
        )
    return taken


def _describe(exc: pydantic.ValidationError) -> str:
    """Pydantic's errors without the offending values: those may be whole images."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)
