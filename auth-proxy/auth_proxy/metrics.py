"""The proxy's own Prometheus metrics, served on the admin port."""

from prometheus_client import Counter

REQUESTS = Counter(
    "auth_proxy_requests_total",
    "Requests answered by the proxy, by protocol and status (HTTP status or gRPC code).",
    ["protocol", "status"],
)
KEY_FETCHES = Counter(
    "auth_proxy_jwks_fetches_total", "Attempts to fetch the issuer's key set.", ["outcome"]
)
REFUSALS = Counter(
    "auth_proxy_refusals_total",
    "Requests the proxy refused or could not finish, by protocol and reason (an RFC 6750 error "
    "code, no_token, malformed_request, request_too_large, request_timeout, client_closed, ...).",
    ["protocol", "reason"],
)
