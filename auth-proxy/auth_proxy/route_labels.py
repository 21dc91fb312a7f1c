"""Which route a request took, as a template: the `route` and `protocol` labels of the
proxy's metrics. A path no template matches is `other`, so a client writing random paths adds
no series."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .public_paths import DOCS_ASSETS


@dataclass(frozen=True, slots=True)
class RouteLabels:
    """The `protocol` and `route` labels of a request's metrics."""

    protocol: str
    route: str


OTHER = RouteLabels(protocol="other", route="other")

_NAME = r"[^/]+"
_REST = [
    (RouteLabels(protocol=protocol, route=template), re.compile(pattern))
    for protocol, template, pattern in (
        ("v2", "/v2/health/live", r"/v2/health/live"),
        ("v2", "/v2/health/ready", r"/v2/health/ready"),
        ("v2", "/v2", r"/v2/?"),
        ("v2", "/v2/models/{model}", rf"/v2/models/{_NAME}"),
        ("v2", "/v2/models/{model}/ready", rf"/v2/models/{_NAME}/ready"),
        ("v2", "/v2/models/{model}/infer", rf"/v2/models/{_NAME}/infer"),
        ("v2", "/v2/models/{model}/versions/{version}", rf"/v2/models/{_NAME}/versions/{_NAME}"),
        (
            "v2",
            "/v2/models/{model}/versions/{version}/ready",
            rf"/v2/models/{_NAME}/versions/{_NAME}/ready",
        ),
        (
            "v2",
            "/v2/models/{model}/versions/{version}/infer",
            rf"/v2/models/{_NAME}/versions/{_NAME}/infer",
        ),
        ("v1", "/v1/models", r"/v1/models/?"),
        ("v1", "/v1/models/{model}", r"/v1/models/[^/:]+"),
        ("v1", "/v1/models/{model}:predict", r"/v1/models/[^/:]+:predict"),
        ("course", "/health", r"/health"),
        ("course", "/upload", r"/upload"),
        ("docs", "/docs", r"/docs(/oauth2-redirect)?"),
        ("docs", "/redoc", r"/redoc"),
        ("docs", "/openapi.json", r"/openapi\.json"),
        (
            "docs",
            "/docs/assets/{asset}",
            "/docs/assets/(" + "|".join(map(re.escape, DOCS_ASSETS)) + ")",
        ),
    )
]

REST_TEMPLATES = frozenset(labels.route for labels, _ in _REST)


def rest_route(path: str) -> RouteLabels:
    """The protocol and the route template of a REST path."""
    for labels, pattern in _REST:
        if pattern.fullmatch(path):
            return labels
    return OTHER


GRPC_SERVICE = "/inference.GRPCInferenceService/"
# The V2 inference methods (the proxy forwards these on its gRPC port), and the rest of the
# V2 service (counted by name, answered UNIMPLEMENTED).
V2_INFERENCE_METHODS = (
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
)
GRPC_METHODS = frozenset(
    {
        *V2_INFERENCE_METHODS,
        "ModelStreamInfer",
        "ModelConfig",
        "ModelStatistics",
        "RepositoryIndex",
        "RepositoryModelLoad",
        "RepositoryModelUnload",
    }
)

_GRPC = {GRPC_SERVICE + name: RouteLabels(protocol="v2", route=name) for name in GRPC_METHODS}


def grpc_route(method: str) -> RouteLabels:
    """The protocol and the route of a gRPC method: the V2 service's method name, or `other`."""
    return _GRPC.get(method, OTHER)
