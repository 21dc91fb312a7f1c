"""Each bad input gets a clear 4xx (or gRPC status) naming the problem, and loses nothing.

The last tests check that after the whole suite the same server still answers a good request
correctly and that its log holds none of the payloads sent.
"""

from __future__ import annotations

import base64

import grpc
import httpx
import numpy as np
import pytest

from support import images
from support.clients import (
    INFER,
    MODEL,
    b64,
    binary_body,
    grpc_image_request,
    grpc_stub,
    json_request,
    send_headers_only,
    values_of,
)

# A marker inside payloads that must never show up in the server's log.
SECRET = b"PAYLOAD-MARKER-7f3a"
NOT_AN_IMAGE = b"this is not an image " + SECRET
GOOD = images.rgb_png(64, 48, seed=9)
OVERSIZED = SECRET + bytes(11 * 1024 * 1024)


def image_input(data, *, name="image", datatype="BYTES", shape=None):
    shape = [len(data)] if shape is None else shape
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}


REST_CASES = {
    # case: (JSON body or raw bytes, expected status, fragment of the error message)
    "not an image": (json_request([NOT_AN_IMAGE]), 400, "image 0: not an image"),
    "truncated image": (
        json_request([images.rgb_jpeg()[:3000]]),
        400,
        "image 0: cannot decode image",
    ),
    "empty bytes": (json_request([b""]), 400, "image 0: empty image"),
    "invalid base64": (image_input(["not*base64!" + SECRET.decode()]), 400, "invalid base64"),
    "decompression bomb": (
        json_request([images.decompression_bomb_png()]),
        413,
        "image 0: image is too large to decode safely",
    ),
    "image over the size limit": (
        json_request([OVERSIZED]),
        413,
        "over the limit of 10485760 bytes",
    ),
    "wrong input name": (image_input([b64(GOOD)], name="img"), 400, "unknown input 'img'"),
    "wrong datatype": (image_input([1.0], datatype="FP32"), 400, "must be BYTES"),
    "shape disagrees with data": (
        image_input([b64(GOOD)], shape=[2]),
        400,
        "declares shape [2] but holds 1",
    ),
    "shape not one-dimensional": (
        image_input([b64(GOOD)], shape=[1, 1]),
        400,
        "must have shape [N]",
    ),
    "pixels of the wrong shape": (
        image_input([0.0] * 12, name="pixels", datatype="FP32", shape=[1, 2, 2, 3]),
        400,
        "must have shape [N, 224, 224, 3]",
    ),
    "pixels that are not numbers": (
        image_input(
            ["a"] * (224 * 224 * 3), name="pixels", datatype="FP32", shape=[1, 224, 224, 3]
        ),
        400,
        "must hold numbers only",
    ),
    "too many images": (json_request([GOOD] * 33), 413, "33 images is over the limit of 32"),
    "no image": (image_input([], shape=[0]), 400, "holds no image"),
    "one bad image in a batch": (
        json_request([GOOD, GOOD, NOT_AN_IMAGE, GOOD]),
        400,
        "image 2: not an image",
    ),
    "two inputs": (
        {"inputs": [*image_input([b64(GOOD)])["inputs"], *image_input([b64(GOOD)])["inputs"]]},
        400,
        "expected exactly one input",
    ),
    "malformed JSON": (b'{"inputs": [', 400, "malformed JSON"),
    "JSON that is not a V2 request": ({"inputs": "image"}, 400, "not a V2 inference request"),
    "JSON array body": (b"[1, 2]", 400, "must be a JSON object"),
}


@pytest.mark.parametrize("case", list(REST_CASES))
def test_rest_bad_input(predictor, case):
    body, status, message = REST_CASES[case]
    if isinstance(body, bytes):
        response = httpx.post(predictor.url + INFER, content=body, timeout=60)
    else:
        response = httpx.post(predictor.url + INFER, json=body, timeout=60)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_unknown_model_is_404(predictor):
    response = httpx.post(f"{predictor.url}/v2/models/dogs-only/infer", json=json_request([GOOD]))
    assert response.status_code == 404
    assert "dogs-only" in response.json()["error"]


@pytest.mark.parametrize(
    ("header_length", "message"),
    [("abc", "must be a number of bytes"), ("999999", "but the body has")],
)
def test_binary_extension_with_a_wrong_header_length(predictor, header_length, message):
    body, headers = binary_body([GOOD], length_prefixed=False)
    headers["Inference-Header-Content-Length"] = header_length
    response = httpx.post(predictor.url + INFER, content=body, headers=headers)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_binary_extension_with_sizes_that_do_not_add_up(predictor):
    body, headers = binary_body([GOOD], length_prefixed=False)
    response = httpx.post(predictor.url + INFER, content=body + b"extra", headers=headers)
    assert response.status_code == 400
    assert "not claimed by any input" in response.json()["error"]


def test_binary_extension_batch_that_is_not_length_prefixed(predictor):
    body, headers = binary_body([GOOD, GOOD], length_prefixed=False)
    response = httpx.post(predictor.url + INFER, content=body, headers=headers)
    assert response.status_code == 400
    assert "is not 2 length-prefixed elements" in response.json()["error"]


def test_body_over_the_request_limit_is_refused_before_it_is_sent(predictor):
    status, body = send_headers_only(
        predictor.http_port,
        f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {200 * 1024 * 1024}\r\n\r\n",
    )
    assert status.startswith("HTTP/1.1 413")
    assert "over the limit" in body


def test_v1_bad_inputs(predictor):
    url = f"{predictor.url}/v1/models/{MODEL}:predict"
    malformed = httpx.post(url, content=b"{nope", headers={"content-type": "application/json"})
    assert malformed.status_code == 400
    wrong_shape = httpx.post(url, json={"instances": [{"image": "abc"}]})
    assert wrong_shape.status_code == 400
    assert "image 0" in wrong_shape.json()["error"]
    not_image = httpx.post(url, json={"instances": [{"image": {"b64": b64(NOT_AN_IMAGE)}}]})
    assert not_image.status_code == 400
    assert "image 0: not an image" in not_image.json()["error"]


def test_upload_bad_inputs(predictor):
    not_image = httpx.post(predictor.url + "/upload", files={"file": ("x", NOT_AN_IMAGE)})
    assert not_image.status_code == 400
    assert "not an image" in not_image.json()["error"]
    missing_part = httpx.post(predictor.url + "/upload", files={"other": ("x", GOOD)})
    assert missing_part.status_code == 422


GRPC_CASES = {
    "not an image": ([NOT_AN_IMAGE], grpc.StatusCode.INVALID_ARGUMENT, "image 0: not an image"),
    "empty bytes": ([b""], grpc.StatusCode.INVALID_ARGUMENT, "image 0: empty image"),
    "one bad image in a batch": (
        [GOOD, NOT_AN_IMAGE],
        grpc.StatusCode.INVALID_ARGUMENT,
        "image 1: not an image",
    ),
    "image over the size limit": (
        [OVERSIZED],
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "over the limit of 10485760 bytes",
    ),
    "too many images": ([GOOD] * 33, grpc.StatusCode.RESOURCE_EXHAUSTED, "33 images"),
}


@pytest.fixture(scope="module")
def grpc_client(predictor):
    channel, stub = grpc_stub(predictor.grpc_target)
    yield stub
    channel.close()


@pytest.mark.parametrize("case", list(GRPC_CASES))
def test_grpc_bad_input(grpc_client, case):
    photos, code, message = GRPC_CASES[case]
    with pytest.raises(grpc.RpcError) as error:
        grpc_client.ModelInfer(grpc_image_request(photos, raw=False), timeout=60)
    assert error.value.code() == code
    assert message in error.value.details()


def test_grpc_wrong_input_name(grpc_client):
    request = grpc_image_request([GOOD], raw=False)
    request.inputs[0].name = "img"
    with pytest.raises(grpc.RpcError) as error:
        grpc_client.ModelInfer(request, timeout=60)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown input 'img'" in error.value.details()


def test_grpc_unknown_model_is_not_found(grpc_client):
    with pytest.raises(grpc.RpcError) as error:
        grpc_client.ModelInfer(grpc_image_request([GOOD], raw=False, model="dogs-only"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_message_over_the_request_limit(grpc_client):
    with pytest.raises(grpc.RpcError) as error:
        grpc_client.ModelInfer(grpc_image_request([bytes(70 * 1024 * 1024)], raw=True))
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_after_all_bad_inputs_a_good_request_is_answered_correctly(predictor, keras_model):
    from predictor.imaging import ImageLimits, decode_image

    assert predictor.popen.poll() is None, "the predictor process died"
    response = httpx.post(predictor.url + INFER, json=json_request([GOOD]), timeout=60)
    assert response.status_code == 200
    _, values = values_of(response.json())
    expected = keras_model.predict(decode_image(GOOD, ImageLimits())[np.newaxis], verbose=0)
    np.testing.assert_allclose(values, expected, atol=1e-5, rtol=0)


def test_logs_hold_no_payload(predictor):
    log = predictor.log()
    assert "refused request: image 0: not an image" in log  # bad inputs were logged ...
    assert SECRET.decode() not in log  # ... without their payloads
    assert base64.b64encode(SECRET).decode()[:12] not in log
