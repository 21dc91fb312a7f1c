"""The proxy's gRPC port: tokens from `authorization` metadata, probes without one, messages passed
through unchanged, the predictor's own statuses and deadlines kept."""

from __future__ import annotations

import grpc
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from support.clients import MODEL, grpc_image_request, grpc_stub, grpc_values
from support.images import rgb_jpeg


@pytest.fixture(scope="module")
def stub(proxy):
    channel, stub = grpc_stub(f"127.0.0.1:{proxy.grpc_port}")
    yield stub
    channel.close()


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


@pytest.mark.parametrize(
    ("call", "request_"),
    [
        ("ServerLive", pb.ServerLiveRequest()),
        ("ServerReady", pb.ServerReadyRequest()),
    ],
)
def test_probes_pass_without_a_token(stub, call, request_):
    answer = getattr(stub, call)(request_, timeout=10)
    assert answer.live if call == "ServerLive" else answer.ready


def test_model_ready_names_a_model_and_needs_a_token(stub, issuer):
    """Public methods are those whose request carries nothing (the proxy never reads an
    anonymous message); ServerReady answers the same question for this one-model server."""
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stub.ModelReady(pb.ModelReadyRequest(name=MODEL), metadata=bearer(issuer.token())).ready


@pytest.mark.parametrize(
    ("metadata", "code", "description"),
    [
        ([], grpc.StatusCode.UNAUTHENTICATED, "a bearer token is required"),
        (bearer("garbage"), grpc.StatusCode.UNAUTHENTICATED, "malformed token"),
    ],
    ids=["no token", "garbage"],
)
def test_model_infer_needs_a_valid_token(stub, metadata, code, description):
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(grpc_image_request([rgb_jpeg()], raw=False), metadata=metadata, timeout=10)
    assert error.value.code() == code
    assert description in error.value.details()


def test_expired_token_names_the_failed_check(stub, issuer):
    import time

    token = issuer.token(exp=int(time.time()) - 600)
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), metadata=bearer(token), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.value.details() == "token expired"


def test_missing_scope_is_permission_denied(stub, issuer):
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelMetadata(
            pb.ModelMetadataRequest(name=MODEL),
            metadata=bearer(issuer.token(scope="x")),
            timeout=10,
        )
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "lacks the scope get::prediction" in error.value.details()


@pytest.mark.parametrize("raw", [False, True], ids=["bytes_contents", "raw_input_contents"])
def test_inference_through_the_proxy_equals_the_direct_answer(stub, predictor, issuer, raw):
    request = grpc_image_request([rgb_jpeg(), rgb_jpeg(seed=3)], raw=raw)
    channel, direct = grpc_stub(predictor.grpc_target)
    with channel:
        expected = grpc_values(direct.ModelInfer(request, timeout=30))
    answer = stub.ModelInfer(request, metadata=bearer(issuer.token()), timeout=30)
    labels, values = grpc_values(answer)
    assert labels == expected[0]
    assert (values == expected[1]).all()


def test_the_predictors_own_errors_come_back_unchanged(stub, issuer):
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(
            grpc_image_request([b"not an image"], raw=False),
            metadata=bearer(issuer.token()),
            timeout=10,
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image 0: not an image" in error.value.details()


def test_deadlines_are_passed_on(stub, issuer):
    big = grpc_image_request([rgb_jpeg(4000, 3000, seed=1)] * 8, raw=False)
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(big, metadata=bearer(issuer.token()), timeout=0.05)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_predictor_down_is_unavailable(echo_proxy, issuer):
    channel, stub = grpc_stub(f"127.0.0.1:{echo_proxy.grpc_port}")
    with channel, pytest.raises(grpc.RpcError) as error:
        stub.ModelMetadata(
            pb.ModelMetadataRequest(name=MODEL), metadata=bearer(issuer.token()), timeout=10
        )
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_other_services_are_unimplemented(proxy):
    channel = grpc.insecure_channel(f"127.0.0.1:{proxy.grpc_port}")
    with channel:
        call = channel.unary_unary("/grpc.health.v1.Health/Check")
        with pytest.raises(grpc.RpcError) as error:
            call(b"", timeout=5)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
