"""`route_labels`: a REST path becomes its route template, a gRPC method its name, and anything
else `other`, so that no client can add a series to the proxy's metrics."""

from __future__ import annotations

import pytest

from auth_proxy.route_labels import grpc_route, rest_route

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v2/models/cats-dogs-other/infer", ("v2", "/v2/models/{model}/infer")),
        ("/v2/models/x/versions/abc/infer", ("v2", "/v2/models/{model}/versions/{version}/infer")),
        ("/v2/models/x/versions/abc/ready", ("v2", "/v2/models/{model}/versions/{version}/ready")),
        ("/v2/models/x", ("v2", "/v2/models/{model}")),
        ("/v2", ("v2", "/v2")),
        ("/v2/health/ready", ("v2", "/v2/health/ready")),
        ("/v1/models/x:predict", ("v1", "/v1/models/{model}:predict")),
        ("/v1/models/x", ("v1", "/v1/models/{model}")),
        ("/upload", ("course", "/upload")),
        ("/health", ("course", "/health")),
        ("/docs", ("docs", "/docs")),
        ("/v2/models/x/infer/extra", ("other", "other")),
        ("/v2/models//infer", ("other", "other")),
        ("/v2/repository/index", ("other", "other")),
        ("/\x1b[31m", ("other", "other")),
        ("/" + "a" * 5000, ("other", "other")),
    ],
)
def test_rest_routes_are_templates(path, expected):
    labels = rest_route(path)
    assert (labels.protocol, labels.route) == expected


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("/inference.GRPCInferenceService/ModelInfer", ("v2", "ModelInfer")),
        ("/inference.GRPCInferenceService/RepositoryIndex", ("v2", "RepositoryIndex")),
        ("/inference.GRPCInferenceService/MadeUp", ("other", "other")),
        ("/other.Service/ModelInfer", ("other", "other")),
        ("ModelInfer", ("other", "other")),
    ],
)
def test_grpc_routes_are_known_methods(method, expected):
    labels = grpc_route(method)
    assert (labels.protocol, labels.route) == expected
