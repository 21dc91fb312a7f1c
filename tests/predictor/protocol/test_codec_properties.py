"""Property-based tests of the request codec: whatever bytes a client sends as a V2 REST body
(plain JSON or the binary-data extension) or a V1 body, the answer is the request it describes
or a `BadRequest` (a 4xx with its message), never another exception (a 500)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kserve.errors import InvalidInput

from predictor.errors import BadRequest
from predictor.protocol import codec

pytestmark = pytest.mark.unit

MODEL = "cats-dogs-other"
PROPERTIES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
# Documents shaped like V2 requests, with every field free to be wrong.
tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["image", "pixels", "x"]) | json_values,
        "shape": st.lists(st.integers(-2, 5), max_size=4) | json_values,
        "datatype": st.sampled_from(["BYTES", "FP32", "UINT8", "INT64", "BOOL"]) | json_values,
    },
    optional={
        "data": st.lists(json_values, max_size=4) | json_values,
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(-5, 64) | json_values}
        )
        | json_values,
    },
)
documents = st.fixed_dictionaries(
    {"inputs": st.lists(tensors, max_size=3) | json_values},
    optional={"id": json_values, "parameters": json_values, "outputs": json_values},
)


def refused_or_parsed(body: bytes, json_length: str | None) -> None:
    try:
        request = codec.infer_request_from_rest(body, json_length, MODEL)
        codec.batch_from_infer_request(request, max_images=8)
    except BadRequest as exc:
        assert 400 <= exc.http_status < 500
    except InvalidInput:
        pass  # KServe's own 400 (its handler and ours both map it to 400 / INVALID_ARGUMENT)


@PROPERTIES
@given(st.binary(max_size=300), st.none() | st.text(max_size=8) | st.integers(-3, 400).map(str))
def test_arbitrary_bytes_are_refused_cleanly(body, json_length):
    refused_or_parsed(body, json_length)


@PROPERTIES
@given(documents, st.binary(max_size=200), st.booleans())
def test_request_shaped_documents_are_refused_or_parsed(document, tail, binary):
    header = json.dumps(document).encode()
    if binary:
        refused_or_parsed(header + tail, str(len(header)))
    else:
        refused_or_parsed(header, None)


@PROPERTIES
@given(json_values | st.fixed_dictionaries({"instances": json_values}))
def test_v1_bodies_are_refused_or_parsed(body):
    try:
        codec.batch_from_v1(body, max_images=8)
    except BadRequest as exc:
        assert 400 <= exc.http_status < 500
