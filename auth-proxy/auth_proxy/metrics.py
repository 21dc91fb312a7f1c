"""The proxy's own Prometheus metrics, served on the admin port (`/metrics`).

Every label takes a small, fixed set of values: routes are templates (`route_labels.py`), never
the path a client wrote, so no client can grow the number of series. The label `door` is the
port a request came in on: `rest` or `grpc` (its name is kept: dashboards and alerts use it)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

# From a probe (milliseconds) to a VGG16 batch under load (seconds), up to the upstream timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUEST_SECONDS = Histogram(
    "auth_proxy_request_duration_seconds",
    "Requests through the proxy, from arrival to the last byte of the answer, by door (the "
    "port: rest, grpc), protocol (v2, v1, course, docs, other), route template and status (HTTP "
    "status or gRPC code). Its _count is the number of requests.",
    ["door", "protocol", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "auth_proxy_requests_in_flight",
    "Requests the proxy is answering now, by door (port).",
    ["door"],
)
REFUSALS = Counter(
    "auth_proxy_refusals_total",
    "Requests the proxy refused or could not finish, by door and reason (an RFC 6750 error "
    "code, no_token, request_too_large, request_timeout, incomplete_body, not_found, ...).",
    ["door", "reason"],
)
UPSTREAM_ERRORS = Counter(
    "auth_proxy_upstream_errors_total",
    "Admitted requests the predictor did not answer, by door and reason (unreachable, timeout, "
    "broken_answer; for gRPC the call's code, UNAVAILABLE or DEADLINE_EXCEEDED).",
    ["door", "reason"],
)
BUDGET_BYTES = Gauge(
    "auth_proxy_memory_budget_bytes",
    "Bytes of admitted request bodies and gRPC messages the proxy lets be in flight at once "
    "(MEMORY_BUDGET_BYTES, or sized from the container's memory limit).",
)
BUDGET_HELD = Gauge(
    "auth_proxy_memory_budget_held_bytes",
    "Bytes of the memory budget held now by requests in flight. Requests that do not fit are "
    'refused (auth_proxy_refusals_total{reason="over_budget"}: 429 / RESOURCE_EXHAUSTED).',
)
KEY_FETCHES = Counter(
    "auth_proxy_jwks_fetches_total", "Attempts to fetch the issuer's key set.", ["outcome"]
)
KEYS_HELD = Gauge(
    "auth_proxy_jwks_keys", "Signing keys held that can verify a token of an allowed algorithm."
)
KEYS_FETCHED_AT = Gauge(
    "auth_proxy_jwks_last_success_timestamp_seconds",
    "When the key set held was last fetched successfully (Unix time; the keys' age is "
    "time() minus this). 0 until the first fetch succeeds.",
)

PAYLOAD_LOG_SENT = Counter(
    "auth_proxy_payload_log_sent_total",
    "Payload-log events (CloudEvents of inference requests and answers) the receiver took "
    "(PAYLOAD_LOG_URL answered 2xx).",
)
PAYLOAD_LOG_DROPPED = Counter(
    "auth_proxy_payload_log_dropped_total",
    "Payload-log events not delivered, by reason: queue_full (no room in the queue: the "
    "request was never made to wait), too_large (a body larger than the whole queue), "
    "send_failed (the receiver refused it, failed, or did not answer in time).",
    ["reason"],
)
PAYLOAD_LOG_QUEUE_BYTES = Gauge(
    "auth_proxy_payload_log_queue_bytes",
    "Bytes the payload log holds now: bodies being copied, queued or being sent.",
)
PAYLOAD_LOG_QUEUE_CAPACITY = Gauge(
    "auth_proxy_payload_log_queue_capacity_bytes",
    "The most the payload log may hold (PAYLOAD_LOG_QUEUE_BYTES, out of the memory budget); "
    "0: payload logging is off.",
)


def observe(port: str, protocol: str, route: str, status: str, started: float) -> None:
    """One answered request on `port` (`rest`, `grpc`: the `door` label): `started` is its
    `time.perf_counter()` on arrival."""
    elapsed = time.perf_counter() - started
    REQUEST_SECONDS.labels(port, protocol, route, status).observe(elapsed)


# Known label values start at 0, so a rate or an alert sees the series before its first event.
for _port, _reason in (
    ("rest", "unreachable"),
    ("rest", "timeout"),
    ("rest", "broken_answer"),
    ("grpc", "UNAVAILABLE"),
    ("grpc", "DEADLINE_EXCEEDED"),
):
    UPSTREAM_ERRORS.labels(_port, _reason)
for _port in ("rest", "grpc"):
    REFUSALS.labels(_port, "over_budget")
for _outcome in ("ok", "failed"):
    KEY_FETCHES.labels(_outcome)
PAYLOAD_LOG_DROP_REASONS = ("queue_full", "too_large", "send_failed", "shutdown")
for _reason in PAYLOAD_LOG_DROP_REASONS:
    PAYLOAD_LOG_DROPPED.labels(_reason)
