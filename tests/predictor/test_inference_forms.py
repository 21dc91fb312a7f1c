"""Every way a client can send an image gets the same answer."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from support import images
from support.clients import (
    INFER,
    MODEL,
    b64,
    binary_body,
    grpc_image_request,
    grpc_stub,
    grpc_values,
    json_request,
    parse_binary_answer,
    values_of,
)

PHOTOS = [images.rgb_jpeg(seed=1), images.rgba_png(), images.cmyk_jpeg()]


@pytest.fixture(scope="module")
def expected(predictor):
    response = httpx.post(predictor.url + INFER, json=json_request(PHOTOS), timeout=60)
    assert response.status_code == 200, response.text
    labels, values = values_of(response.json())
    assert labels == [["Cat", "Dog", "Other"][int(np.argmax(row))] for row in values]
    assert values.shape == (3, 3)
    return labels, values


@pytest.fixture(scope="module")
def grpc_client(predictor):
    channel, stub = grpc_stub(predictor.grpc_target)
    yield stub
    channel.close()


def assert_same(answer, expected):
    labels, values = answer
    assert list(labels) == expected[0]
    np.testing.assert_allclose(values, expected[1], atol=1e-6, rtol=0)


def test_rest_json_one_image_at_a_time_equals_the_batch(predictor, expected):
    for index, photo in enumerate(PHOTOS):
        response = httpx.post(predictor.url + INFER, json=json_request([photo]), timeout=60)
        labels, values = values_of(response.json())
        assert labels == expected[0][index : index + 1]
        np.testing.assert_allclose(values[0], expected[1][index], atol=1e-6, rtol=0)


def test_rest_json_answer_keeps_the_request_id(predictor):
    body = json_request(PHOTOS[:1], id="my-request-42")
    response = httpx.post(predictor.url + INFER, json=body, timeout=60)
    assert response.json()["id"] == "my-request-42"
    assert response.json()["model_name"] == MODEL


@pytest.mark.parametrize("length_prefixed", [True, False], ids=["length-prefixed", "raw-file"])
def test_rest_binary_extension_with_image_bytes(predictor, expected, length_prefixed):
    photos = PHOTOS if length_prefixed else PHOTOS[:1]
    body, headers = binary_body(photos, length_prefixed=length_prefixed)
    response = httpx.post(predictor.url + INFER, content=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    labels, values = values_of(response.json())
    assert_same((labels, values), (expected[0][: len(photos)], expected[1][: len(photos)]))


def test_rest_binary_outputs_when_asked_for_the_whole_answer(predictor, expected):
    body, headers = binary_body(
        PHOTOS, length_prefixed=True, parameters={"binary_data_output": True}
    )
    response = httpx.post(predictor.url + INFER, content=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    assert_same(parse_binary_answer(response), expected)


def test_rest_binary_output_for_one_requested_output(predictor, expected):
    body = json_request(
        PHOTOS,
        outputs=[
            {"name": "prediction"},
            {"name": "values", "parameters": {"binary_data": True}},
        ],
    )
    response = httpx.post(predictor.url + INFER, json=body, timeout=60)
    assert response.status_code == 200, response.text
    json_length = int(response.headers["inference-header-content-length"])
    header = httpx.Response(200, content=response.content[:json_length]).json()
    outputs = {output["name"]: output for output in header["outputs"]}
    assert outputs["prediction"]["data"] == expected[0]
    values = np.frombuffer(response.content[json_length:], dtype="<f4").reshape(3, 3)
    np.testing.assert_allclose(values, expected[1], atol=1e-6, rtol=0)


@pytest.mark.parametrize("raw", [False, True], ids=["bytes_contents", "raw_input_contents"])
def test_grpc_model_infer(grpc_client, expected, raw):
    response = grpc_client.ModelInfer(grpc_image_request(PHOTOS, raw=raw), timeout=60)
    assert_same(grpc_values(response), expected)


def test_grpc_raw_input_contents_with_one_unprefixed_file(grpc_client, expected):
    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="BYTES", shape=[1])
    request = pb.ModelInferRequest(
        model_name=MODEL, inputs=[tensor], raw_input_contents=[PHOTOS[0]]
    )
    response = grpc_client.ModelInfer(request, timeout=60)
    assert_same(grpc_values(response), (expected[0][:1], expected[1][:1]))


def preprocessed(photos):
    from predictor.imaging import ImageLimits, decode_image

    return np.stack([decode_image(photo, ImageLimits()) for photo in photos])


def test_rest_pixels_input(predictor, expected):
    pixels = preprocessed(PHOTOS[:1])
    body = {
        "inputs": [
            {
                "name": "pixels",
                "shape": list(pixels.shape),
                "datatype": "FP32",
                "data": pixels.reshape(-1).tolist(),
            }
        ]
    }
    response = httpx.post(predictor.url + INFER, json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert_same(values_of(response.json()), (expected[0][:1], expected[1][:1]))


def test_grpc_pixels_input_raw(grpc_client, expected):
    pixels = preprocessed(PHOTOS)
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="pixels", datatype="FP32", shape=list(pixels.shape)
    )
    request = pb.ModelInferRequest(
        model_name=MODEL, inputs=[tensor], raw_input_contents=[pixels.astype("<f4").tobytes()]
    )
    assert_same(grpc_values(grpc_client.ModelInfer(request, timeout=60)), expected)


def test_v1_predict(predictor, expected):
    body = {"instances": [{"image": {"b64": b64(photo)}} for photo in PHOTOS]}
    response = httpx.post(f"{predictor.url}/v1/models/{MODEL}:predict", json=body, timeout=60)
    assert response.status_code == 200, response.text
    rows = response.json()["predictions"]
    assert [row["prediction"] for row in rows] == expected[0]
    np.testing.assert_allclose([row["values"] for row in rows], expected[1], atol=1e-6, rtol=0)


def test_course_upload_route(predictor, expected):
    for index, photo in enumerate(PHOTOS):
        files = {"file": ("photo", photo, "application/octet-stream")}
        response = httpx.post(predictor.url + "/upload", files=files, timeout=60)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert set(answer) == {"prediction", "values"}
        assert answer["prediction"] == expected[0][index]
        np.testing.assert_allclose(answer["values"], expected[1][index], atol=1e-6, rtol=0)


def test_course_health_route(predictor):
    response = httpx.get(predictor.url + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "OK"}


def test_course_routes_are_listed_in_swagger_and_redoc(predictor):
    schema = httpx.get(predictor.url + "/openapi.json").json()
    assert {"/health", "/upload", "/v2/models/{model_name}/infer"} <= set(schema["paths"])
    for page in ("/docs", "/redoc"):
        response = httpx.get(predictor.url + page)
        assert response.status_code == 200
        assert "/openapi.json" in response.text


def test_rest_metadata_declares_inputs_and_outputs(predictor):
    metadata = httpx.get(f"{predictor.url}/v2/models/{MODEL}").json()
    assert metadata["name"] == MODEL
    assert metadata["inputs"] == [
        {"name": "image", "datatype": "BYTES", "shape": [-1]},
        {"name": "pixels", "datatype": "FP32", "shape": [-1, 224, 224, 3]},
    ]
    assert metadata["outputs"] == [
        {"name": "prediction", "datatype": "BYTES", "shape": [-1]},
        {"name": "values", "datatype": "FP32", "shape": [-1, 3]},
    ]


def test_grpc_metadata_agrees_with_rest(predictor, grpc_client):
    rest = httpx.get(f"{predictor.url}/v2/models/{MODEL}").json()
    grpc_answer = grpc_client.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=10)
    as_dicts = [
        {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in grpc_answer.inputs
    ]
    assert as_dicts == rest["inputs"]


def test_prometheus_metrics_count_inferences(predictor):
    httpx.post(predictor.url + INFER, json=json_request(PHOTOS[:1]), timeout=60)
    metrics = httpx.get(predictor.url + "/metrics").text
    assert 'request_predict_seconds_count{model_name="cats-dogs-other"}' in metrics
