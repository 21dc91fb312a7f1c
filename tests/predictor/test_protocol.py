"""V2 protocol details no off-the-shelf client exercises on its own: the error shape of every
refusal, compressed bodies (bombs, broken streams, unknown codings), the answer's fields on both
protocols, and requests for outputs that do not exist. Straight to the predictor and, where the
proxy could change the outcome, through it."""

from __future__ import annotations

import gzip
import zlib

import grpc
import httpx
import orjson
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from support import images
from support.clients import INFER, MODEL, grpc_image_request, grpc_stub, json_request

PHOTO = images.rgb_jpeg(seed=5)
BODY = orjson.dumps(json_request([PHOTO]))


@pytest.fixture(scope="module", params=["predictor", "proxy"])
def entry(request, predictor, issuer) -> tuple[str, dict]:
    """(base URL, headers) of the predictor, or of the proxy with a token."""
    if request.param == "predictor":
        return predictor.url, {}
    proxy = request.getfixturevalue("proxy")
    return proxy.url, {"Authorization": f"Bearer {issuer.token()}"}


def post(entry, path, content, **headers) -> httpx.Response:
    url, auth = entry
    return httpx.post(url + path, content=content, headers={**auth, **headers}, timeout=60)


def assert_error(response: httpx.Response, status: int, *fragments: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert list(document) == ["error"] and isinstance(document["error"], str)
    for fragment in fragments:
        assert fragment in document["error"]
    return document["error"]


# -- every refusal is {"error": "..."} -------------------------------------------------------


def test_a_method_not_allowed_is_an_error_object_naming_the_allowed_ones(predictor):
    response = httpx.get(predictor.url + INFER)
    assert_error(response, 405, "allowed: POST")
    assert response.headers["allow"] == "POST"


def test_an_unknown_route_is_an_error_object(predictor):
    for path in ["/v2/models/cats-dogs-other/config", "/v2/nothing", "/v2/models/x/y/z"]:
        assert_error(httpx.get(predictor.url + path), 404, "no such route")


def test_a_missing_upload_field_is_an_error_object(predictor):
    response = httpx.post(predictor.url + "/upload", files={"other": ("a.png", PHOTO)})
    assert_error(response, 422, "file")


def test_an_unknown_model_and_an_unknown_version_are_error_objects(predictor):
    assert_error(httpx.get(predictor.url + "/v2/models/nope"), 404, "nope")
    assert_error(httpx.post(predictor.url + "/v2/models/nope/infer", content=BODY), 404, "nope")
    for path in ["", "/ready"]:
        response = httpx.get(predictor.url + f"/v2/models/{MODEL}/versions/7{path}")
        assert_error(response, 404, "no version '7'", "it serves")
    response = httpx.post(predictor.url + f"/v2/models/{MODEL}/versions/7/infer", content=BODY)
    assert_error(response, 404, "no version '7'")


def test_an_attacker_written_version_is_cut_in_the_answer(predictor):
    response = httpx.get(predictor.url + f"/v2/models/{MODEL}/versions/{'A' * 5000}/ready")
    assert len(assert_error(response, 404)) < 200


# -- the answer's fields ---------------------------------------------------------------------


def test_rest_answers_name_the_version_served(predictor):
    version = httpx.get(predictor.url + f"/v2/models/{MODEL}").json()["versions"][0]
    for path in [INFER, f"/v2/models/{MODEL}/versions/{version}/infer"]:
        answer = httpx.post(predictor.url + path, content=BODY, timeout=60).json()
        assert answer["model_version"] == version
    ready = httpx.get(predictor.url + f"/v2/models/{MODEL}/versions/{version}/ready")
    assert ready.json() == {"name": MODEL, "ready": True}


def test_grpc_outputs_carry_no_rest_parameters_and_honour_the_requested_outputs(predictor):
    channel, stub = grpc_stub(predictor.grpc_target)
    with channel:
        for raw in (True, False):
            request = grpc_image_request([PHOTO], raw=raw)
            answer = stub.ModelInfer(request, timeout=60)
            assert [o.name for o in answer.outputs] == ["prediction", "values"]
            assert all(not o.parameters for o in answer.outputs)
            assert answer.model_version and not answer.parameters
            assert len(answer.raw_output_contents) == (2 if raw else 0)
            request.outputs.add(name="values")
            answer = stub.ModelInfer(request, timeout=60)
            assert [o.name for o in answer.outputs] == ["values"]
            assert len(answer.raw_output_contents) == (1 if raw else 0)


@pytest.mark.parametrize(
    ("outputs", "parameters", "problem"),
    [
        ([{"name": "logits"}], None, "unknown output 'logits'"),
        ([{"name": "values"}, {"name": "values"}], None, "requested twice"),
        ([{"name": "prediction", "parameters": {"classification": 2}}], None, "holds labels"),
        ([{"name": "values", "parameters": {"classification": -1}}], None, "whole number"),
        ([{"name": "values", "parameters": {"classification": "2"}}], None, "whole number"),
        ([{"name": "values", "parameters": {"classification": True}}], None, "whole number"),
        ([{"name": "values", "parameters": {"binary_data": "yes"}}], None, "true or false"),
        (None, {"binary_data_output": 1}, "true or false"),
    ],
)
def test_a_bad_output_request_is_a_400_naming_it(predictor, outputs, parameters, problem):
    body = json_request([PHOTO])
    if outputs is not None:
        body["outputs"] = outputs
    if parameters is not None:
        body["parameters"] = parameters
    response = httpx.post(predictor.url + INFER, json=body, timeout=60)
    assert_error(response, 400, problem)


def test_a_bad_output_request_over_grpc_is_invalid_argument(predictor):
    channel, stub = grpc_stub(predictor.grpc_target)
    with channel:
        request = grpc_image_request([PHOTO], raw=True)
        request.outputs.add(name="values").parameters["classification"].string_param = "two"
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(request, timeout=60)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "whole number" in refused.value.details()
        request = pb.ModelInferRequest(model_name=MODEL, model_version="7")
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(request, timeout=60)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND


# -- compressed request bodies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("GZip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("identity", lambda b: b),
        ("gzip, identity", gzip.compress),
    ],
)
def test_compressed_bodies_are_decoded(entry, coding, compress):
    plain = post(entry, INFER, BODY).json()
    answer = post(entry, INFER, compress(BODY), **{"Content-Encoding": coding}).json()
    assert answer["outputs"] == plain["outputs"]


def test_a_gzip_bomb_is_413_after_little_more_than_a_mib(entry):
    bomb = gzip.compress(b"{" + b" " * (80 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200 * 1024
    response = post(entry, INFER, bomb, **{"Content-Encoding": "gzip"})
    assert_error(response, 413, "inflates more than 32 times")


def test_a_broken_or_bomb_upload_keeps_its_own_status_and_message(predictor):
    upload = httpx.Request("POST", predictor.url + "/upload", files={"file": ("a.jpg", PHOTO)})
    headers = {"Content-Type": upload.headers["content-type"], "Content-Encoding": "gzip"}
    response = httpx.post(predictor.url + "/upload", content=upload.read(), headers=headers)
    assert_error(response, 400, "not valid gzip")
    bomb = gzip.compress(bytes(20 << 20))
    response = httpx.post(predictor.url + "/upload", content=bomb, headers=headers)
    assert_error(response, 413, "inflates more than 32 times")


def test_a_coding_on_a_request_without_a_body_changes_nothing(predictor):
    for coding in ("br", "gzip"):
        response = httpx.get(
            predictor.url + "/v2/health/ready", headers={"Content-Encoding": coding}
        )
        assert response.status_code == 200


def test_a_huge_output_name_is_cut_in_the_answer(predictor):
    body = json_request([PHOTO])
    body["outputs"] = [{"name": "x" * 100_000}]
    response = httpx.post(predictor.url + INFER, json=body, timeout=60)
    assert len(assert_error(response, 400, "unknown output")) < 300


@pytest.mark.parametrize(
    ("coding", "body", "status", "problem"),
    [
        ("br", b"\x1b\x00", 415, "not 'br'"),
        ("gzip, gzip", gzip.compress(gzip.compress(BODY)), 415, "not 'gzip, gzip'"),
        ("compress", BODY, 415, "gzip, deflate only"),
        ("gzip", BODY, 400, "not valid gzip"),
        ("gzip", gzip.compress(BODY)[:-20], 400, "ends before its data"),
        ("gzip", gzip.compress(BODY) + b"trailing", 400, "after the end"),
        ("deflate", gzip.compress(BODY), 400, "not valid deflate"),
    ],
)
def test_a_body_that_cannot_be_decoded_is_a_clear_4xx(entry, coding, body, status, problem):
    response = post(entry, INFER, body, **{"Content-Encoding": coding})
    assert_error(response, status, problem)
    if status == 415:
        assert response.headers["accept-encoding"] == "gzip, deflate"


def test_a_gzip_upload_reaches_the_course_route(predictor):
    plain = httpx.post(predictor.url + "/upload", files={"file": ("cat.jpg", PHOTO)})
    request = httpx.Request("POST", predictor.url + "/upload", files={"file": ("c.jpg", PHOTO)})
    body = gzip.compress(request.read())
    headers = {"Content-Type": request.headers["content-type"], "Content-Encoding": "gzip"}
    answer = httpx.post(predictor.url + "/upload", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == plain.json()


# -- compressed answers ----------------------------------------------------------------------


def test_answers_are_gzipped_when_asked_and_large_enough(entry):
    batch = orjson.dumps(json_request([PHOTO] * 32))
    url, auth = entry
    with httpx.Client(timeout=60, headers=auth) as client:
        asked = client.post(url + INFER, content=batch, headers={"Accept-Encoding": "gzip"})
        assert asked.headers["content-encoding"] == "gzip"
        assert asked.headers["vary"] == "Accept-Encoding"
        not_asked = client.post(url + INFER, content=batch, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in not_asked.headers
        assert asked.json()["outputs"] == not_asked.json()["outputs"]
        small = client.post(url + INFER, content=BODY, headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in small.headers  # one image's answer: not worth it
