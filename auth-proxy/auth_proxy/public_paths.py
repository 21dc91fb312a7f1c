"""What passes the proxy without a token, and what it never forwards: path lists, read by the
settings (the defaults of PUBLIC_PATHS and PUBLIC_GRPC_METHODS, and what the latter may hold),
the REST port (the documentation pages, the closed prefixes) and the metrics' route labels
(the documentation files). Nothing here imports from the package, so any module may import it.
tests/auth_proxy/test_predictor_agreement.py checks these against the predictor's own lists."""

from __future__ import annotations

# What passes without a token: GET of these paths (PUBLIC_PATHS' default: the probes) ...
DEFAULT_PUBLIC_PATHS = (
    "/health",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/cats-dogs-other/ready",
)
# ... and with PUBLIC_DOCS, GET / HEAD of the documentation pages and the files they load, by
# these exact decoded paths (the predictor's rest/docs.py serves exactly these).
DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
DOCS_PATHS = frozenset(
    {"/docs", "/redoc", "/openapi.json", *(f"/docs/assets/{name}" for name in DOCS_ASSETS)}
)
# Public gRPC methods: only those whose request carries nothing, so that the proxy can answer
# an anonymous call without reading its message (grpc_proxy.py). ModelReady names a model:
# it needs a token (ServerReady says the same for this one-model server).
PUBLIC_GRPC_ALLOWED = (
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
)
DEFAULT_PUBLIC_GRPC_METHODS = PUBLIC_GRPC_ALLOWED
# Never forwarded, whatever the token; compared on the decoded, normalised path. KServe's
# model-repository extension (load / unload / index): the predictor does not mount it either.
# The predictor's metrics: served to monitoring on the admin port, not to inference clients.
CLOSED_PREFIXES = {
    "/v2/repository": "the model-repository extension is not served",
    "/metrics": "metrics are served on the admin port, to monitoring",
}
