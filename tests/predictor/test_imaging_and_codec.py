"""Decoding and the request codec, table-driven and in process: each kind of bad input gets its
own error and status; good input gives the batch the model will see."""

from __future__ import annotations

import base64
import json
import struct

import numpy as np
import pytest

from predictor.errors import BadImage, BadRequest, ImageTooLarge, TooLarge
from predictor.imaging import ImageLimits, ImageOverLimit, ImageProblem, decode_image
from predictor.protocol import codec
from support import images

pytestmark = pytest.mark.unit

LIMITS = ImageLimits()
SMALL = [name for name in images.FORMATS if not name.startswith("4000x3000")]  # fast to make


@pytest.mark.parametrize("name", SMALL)
def test_every_format_decodes_to_the_models_tensor(name):
    pixels = decode_image(images.FORMATS[name](), LIMITS)
    assert pixels.dtype == np.float32 and pixels.shape == (224, 224, 3)


def test_means_are_subtracted_per_channel():
    from PIL import Image

    solid = images.encode(Image.new("RGB", (224, 224), (200, 100, 50)), "PNG")
    pixel = decode_image(solid, LIMITS)[0, 0]
    np.testing.assert_array_equal(pixel, np.float32([200 - 123.68, 100 - 116.779, 50 - 103.939]))


BAD_IMAGES = {
    "empty": (b"", ImageProblem, "empty image"),
    "not an image": (b"hello", ImageProblem, "not an image"),
    "truncated": (images.rgb_jpeg()[:300], ImageProblem, "cannot decode"),
    "too many bytes": (b"\xff" * (LIMITS.max_bytes + 1), ImageOverLimit, "bytes is over"),
    "bomb": (images.decompression_bomb_png(), ImageOverLimit, "too large to decode safely"),
}


def test_the_pixel_limit_is_checked_before_decoding():
    with pytest.raises(ImageOverLimit, match="640x480 pixels is over the limit of 1000"):
        decode_image(images.rgb_jpeg(), ImageLimits(max_pixels=1000))


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_images(case):
    data, kind, message = BAD_IMAGES[case]
    with pytest.raises(kind, match=message):
        decode_image(data, LIMITS)


def v2(*inputs: dict) -> bytes:
    return json.dumps({"inputs": list(inputs)}).encode()


IMAGE = {"name": "image", "shape": [1], "datatype": "BYTES", "data": ["aGVsbG8="]}
PNG = images.tiny_png()

REQUESTS = {
    "malformed JSON": (b"{", None, BadRequest, 400, "malformed JSON"),
    "not an object": (b"[1]", None, BadRequest, 400, "JSON object"),
    "no inputs": (b"{}", None, BadRequest, 400, "not a V2 inference request"),
    "two inputs": (v2(IMAGE, IMAGE), None, BadRequest, 400, "exactly one input"),
    "unknown input": (v2({**IMAGE, "name": "x"}), None, BadRequest, 400, "unknown input 'x'"),
    "no image": (v2({**IMAGE, "shape": [0], "data": []}), None, BadRequest, 400, "no image"),
    "too many images": (
        v2({**IMAGE, "shape": [9], "data": ["aGVsbG8="] * 9}),
        None,
        TooLarge,
        413,
        "over the limit of 8 images",
    ),
    "header length not a number": (v2(IMAGE), "x", BadRequest, 400, "must be a number"),
    "header length past the body": (v2(IMAGE), "100000", BadRequest, 400, "but the body has"),
    "binary size past the body": (
        v2({**IMAGE, "data": None, "parameters": {"binary_data_size": 99}}),
        "len",
        BadRequest,
        400,
        "does not fit",
    ),
}


@pytest.mark.parametrize("case", list(REQUESTS))
def test_bad_v2_requests(case):
    body, header_length, kind, status, message = REQUESTS[case]
    if header_length == "len":
        header_length = str(len(body))
    with pytest.raises(kind, match=message) as error:
        request = codec.infer_request_from_rest(body, header_length, "cats-dogs-other")
        codec.batch_from_infer_request(request, max_images=8)
    assert error.value.http_status == status


def test_the_binary_extension_keeps_image_bytes():
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(PNG) + 4},
                }
            ]
        }
    ).encode()
    body = header + struct.pack("<I", len(PNG)) + PNG
    request = codec.infer_request_from_rest(body, str(len(header)), "cats-dogs-other")
    raw = codec.raw_contents(request.inputs[0])
    assert codec.split_bytes_elements(raw, 1) == [PNG]


@pytest.mark.parametrize(
    ("body", "kind", "message"),
    [
        (b"{", BadRequest, "malformed JSON"),
        ({"instances": "x"}, BadRequest, "instances"),
        ({"instances": [{"image": "x"}]}, BadImage, "image 0"),
        ({"instances": []}, BadRequest, "no image"),
        ({"instances": [{"image": {"b64": "x"}}] * 9}, TooLarge, "8 images"),
    ],
)
def test_bad_v1_bodies(body, kind, message):
    with pytest.raises(kind, match=message):
        codec.batch_from_v1(body, max_images=8)


def test_image_bytes_from_base64_are_checked_and_bounded():
    assert codec.image_bytes(0, base64.b64encode(PNG).decode(), 10**6) == PNG
    with pytest.raises(BadImage, match="invalid base64"):
        codec.image_bytes(3, "not base64!", 10**6)
    with pytest.raises(ImageTooLarge):
        codec.image_bytes(0, "A" * 4000, 100)


def test_prediction_rows_name_the_label_of_each_row():
    rows = codec.prediction_rows(np.float32([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8]]))
    assert [row["prediction"] for row in rows] == ["Cat", "Other"]
