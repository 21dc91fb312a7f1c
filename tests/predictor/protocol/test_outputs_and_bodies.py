"""The V2 answer builder (`predictor/protocol/outputs.py`) and the request-body decoder
(`predictor/protocol/bodies.py`), in process: pure functions, no server."""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kserve import InferRequest
from kserve.protocol.infer_type import RequestedOutput

from predictor.contract import label_of
from predictor.errors import BadRequest, TooLarge
from predictor.protocol import outputs
from predictor.protocol.bodies import _Decoding

pytestmark = pytest.mark.unit

VALUES = np.float32([[0.9, 0.05, 0.3], [0.1, 0.7, 0.7], [0.2, 0.2, 0.2]])


def request(outputs_asked=None, *, grpc=False, raw=False, **parameters) -> InferRequest:
    asked = [RequestedOutput(name, params) for name, params in (outputs_asked or [])]
    made = InferRequest(
        model_name="m",
        infer_inputs=[],
        request_outputs=asked or None,
        parameters=parameters or None,
        from_grpc=grpc,
    )
    made._use_raw_outputs = raw
    return made


def build(req: InferRequest) -> outputs.Answer:
    return outputs.build(req, VALUES, "m", "abc123", "id-1")


def test_every_output_by_default_and_only_those_asked_for():
    assert [t.name for t in build(request()).outputs] == ["prediction", "values"]
    assert [t.name for t in build(request([("values", None)])).outputs] == ["values"]


def test_classification_is_triton_s_top_k_with_ties_to_the_lower_index():
    classes = outputs.top_classes(VALUES, 3)
    assert classes.tolist() == [
        [b"0.900000:0:Cat", b"0.300000:2:Other", b"0.050000:1:Dog"],
        [b"0.700000:1:Dog", b"0.700000:2:Other", b"0.100000:0:Cat"],
        [b"0.200000:0:Cat", b"0.200000:1:Dog", b"0.200000:2:Other"],
    ]
    assert outputs.top_classes(VALUES, 99).shape == (3, 3)
    assert outputs.top_classes(VALUES, 1).shape == (3, 1)


@given(st.lists(st.lists(st.floats(0, 1, width=32), min_size=3, max_size=3), min_size=1))
def test_the_top_class_is_always_the_prediction(rows):
    values = np.float32(rows)
    top = outputs.top_classes(values, 1)[:, 0]
    assert [entry.decode().split(":")[2] for entry in top] == [label_of(r) for r in values]


def test_rest_answer_json_and_binary_carry_the_same_tensors():
    plain = outputs.to_rest(build(request()))
    assert plain.json_length is None
    document = orjson.loads(plain.payload)
    assert document["model_version"] == "abc123" and document["id"] == "id-1"
    assert document["outputs"][0]["data"] == ["Cat", "Dog", "Cat"]
    answer = outputs.to_rest(build(request(binary_data_output=True)))
    body, length = answer.payload, answer.json_length
    assert length is not None
    header = orjson.loads(body[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    labels, values = body[length : length + sizes[0]], body[length + sizes[0] :]
    assert labels == b"".join(struct.pack("<I", len(x)) + x for x in [b"Cat", b"Dog", b"Cat"])
    np.testing.assert_array_equal(np.frombuffer(values, "<f4").reshape(3, 3), VALUES)


def test_one_output_may_be_binary_and_the_other_json():
    asked = [("prediction", {"binary_data": False}), ("values", {"binary_data": True})]
    answer = outputs.to_rest(build(request(asked)))
    assert answer.json_length is not None
    header = orjson.loads(answer.payload[: answer.json_length])
    assert header["outputs"][0]["data"] == ["Cat", "Dog", "Cat"]
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 36}


def test_grpc_answer_is_raw_only_when_the_inputs_were():
    typed = outputs.to_grpc(build(request(grpc=True)))
    assert not typed.raw_output_contents
    assert list(typed.outputs[1].contents.fp32_contents) == VALUES.reshape(-1).tolist()
    raw = outputs.to_grpc(build(request(grpc=True, raw=True)))
    assert len(raw.raw_output_contents) == 2
    assert all(not o.parameters and not o.HasField("contents") for o in raw.outputs)
    assert raw.model_version == "abc123"


@pytest.mark.parametrize(
    "asked",
    [
        [("nope", None)],
        [("values", None), ("values", None)],
        [("prediction", {"classification": 1})],
        [("values", {"classification": 1.5})],
        [("values", {"classification": False})],
        [("values", {"binary_data": 1})],
    ],
)
def test_bad_output_requests_are_bad_requests(asked):
    with pytest.raises(BadRequest):
        outputs.wanted_outputs(request(asked))


# -- request bodies --------------------------------------------------------------------------


def decode(coding: str, data: bytes, max_bytes: int, chunk: int) -> bytes:
    decoding = _Decoding(coding, max_bytes)
    out = b"".join(decoding.feed(data[i : i + chunk]) for i in range(0, len(data), chunk))
    decoding.finish()
    return out


@given(st.binary(max_size=4096), st.integers(1, 700), st.sampled_from(["gzip", "deflate"]))
def test_any_chunking_decodes_the_same_bytes(data, chunk, coding):
    encoded = gzip.compress(data) if coding == "gzip" else zlib.compress(data)
    assert decode(coding, encoded, 4096, chunk) == data


@given(st.integers(0, 3000), st.integers(1, 500))
def test_never_more_than_one_byte_past_the_limit_is_inflated(limit, chunk):
    encoded = gzip.compress(bytes(4000))
    decoding = _Decoding("gzip", limit)
    with pytest.raises(TooLarge):
        for i in range(0, len(encoded), chunk):
            decoding.feed(encoded[i : i + chunk])
        decoding.finish()
    assert decoding.decoded <= limit + 1


def test_a_bomb_stops_at_its_inflation_ratio_long_before_the_body_limit():
    bomb = gzip.compress(bytes(50 << 20), compresslevel=9)  # ~50 KB on the wire
    decoding = _Decoding("gzip", 64 << 20)
    with pytest.raises(TooLarge, match="inflates more than 32 times"):
        for i in range(0, len(bomb), 1000):
            decoding.feed(bomb[i : i + 1000])
    assert decoding.decoded <= (1 << 20) + 32 * decoding.received + 1


def test_real_bodies_inflate_well_within_the_ratio():
    from support import images
    from support.clients import json_request

    body = orjson.dumps(json_request([images.rgb_jpeg(seed=1)] * 4))
    assert decode("gzip", gzip.compress(body), 64 << 20, 4096) == body


@given(st.binary(min_size=1, max_size=200))
def test_garbage_is_a_bad_request_never_another_error(garbage):
    for coding in ("gzip", "deflate"):
        with pytest.raises(BadRequest):
            decode(coding, garbage, 1 << 20, 7)
