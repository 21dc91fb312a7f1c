"""The door's pure rules, table-driven and in process: refusals and their answers on both
protocols, which headers pass, which paths are closed, what a log line may hold."""

from __future__ import annotations

import json
import logging

import grpc
import pytest
from multidict import CIMultiDict

from auth_proxy import answers, logsafe, passing
from auth_proxy.auth import bearer_token, one_credential
from auth_proxy.grpc_proxy import checked_metadata, peer_address
from auth_proxy.rest_proxy import closed_because, forwardable, has_dot_segments
from auth_proxy.routes import grpc_route, rest_route
from auth_proxy.tokens import Principal

REALM = "cats-dogs-other"

ANSWERS = {
    "no token": (answers.no_token(), 401, f'Bearer realm="{REALM}"', "UNAUTHENTICATED"),
    "invalid token": (
        answers.invalid_token("token expired"),
        401,
        f'Bearer realm="{REALM}", error="invalid_token", error_description="token expired"',
        "UNAUTHENTICATED",
    ),
    "insufficient scope": (
        answers.insufficient_scope("the token lacks the scope x", "x"),
        403,
        f'Bearer realm="{REALM}", error="insufficient_scope", '
        'error_description="the token lacks the scope x", scope="x"',
        "PERMISSION_DENIED",
    ),
    "invalid request": (
        answers.invalid_request("two"),
        400,
        f'Bearer realm="{REALM}", error="invalid_request", error_description="two"',
        "UNAUTHENTICATED",
    ),
    "no keys": (answers.keys_unavailable("down"), 503, None, "UNAVAILABLE"),
    "too large": (answers.too_large("big"), 413, None, "RESOURCE_EXHAUSTED"),
    "timeout": (answers.request_timeout("slow"), 408, None, "DEADLINE_EXCEEDED"),
    "closed": (answers.not_found("closed"), 404, None, "UNIMPLEMENTED"),
    "bad gateway": (answers.gateway_error(502, "down"), 502, None, "UNAVAILABLE"),
    "gateway timeout": (answers.gateway_error(504, "slow"), 504, None, "DEADLINE_EXCEEDED"),
}


@pytest.mark.parametrize("case", list(ANSWERS))
def test_each_refusal_has_its_answer_on_both_protocols(case):
    refusal, status, challenge, code = ANSWERS[case]
    response = answers.rest_answer(refusal, REALM)
    assert response.status == status
    assert response.headers.get("WWW-Authenticate") == challenge
    body = json.loads(response.body)
    assert body["error"] == (refusal.error or "unauthorized")
    assert body["error_description"] == refusal.description
    assert answers.grpc_code(refusal) == getattr(grpc.StatusCode, code)


def test_a_challenge_carries_only_what_rfc_6750_allows():
    challenge = answers.www_authenticate(answers.invalid_token('a "quoted"\\ é\r\nX: y'), REALM)
    assert challenge.endswith('error_description="a ?quoted?? ???X: y"')


@pytest.mark.parametrize(
    ("header", "outcome"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("BEARER abc", "abc"),
        (None, 401),
        ("", 401),
        ("Basic dXNlcjpwYXNz", 401),
        ("Bearer", 401),
        ("Bearer    ", 401),
    ],
)
def test_the_bearer_token_of_a_header(header, outcome):
    if isinstance(outcome, str):
        assert bearer_token(header) == outcome
    else:
        with pytest.raises(answers.Refusal) as refusal:
            bearer_token(header)
        assert refusal.value.status == outcome


def test_one_credential_only():
    assert one_credential([]) is None
    assert one_credential(["Bearer a"]) == "Bearer a"
    with pytest.raises(answers.Refusal) as refusal:
        one_credential(["Bearer a", "Bearer a"])
    assert refusal.value.status == 400


@pytest.mark.parametrize(
    ("name", "identity"),
    [
        ("Authorization", True),
        ("authorization-bin", True),
        ("X-Auth-Role", True),
        ("x-auth-subject", True),
        ("X_Auth_Subject", True),
        ("authorization_bin", True),
        ("X-Authorization", False),
        ("X-Request-Id", False),
    ],
)
def test_identity_headers(name, identity):
    assert passing.is_identity(name) is identity


def test_forwardable_drops_hop_by_hop_headers_and_those_connection_names():
    headers = CIMultiDict(
        [
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "1"),
            ("Keep-Alive", "5"),
            ("Transfer-Encoding", "chunked"),
            ("Expect", "100-continue"),
            ("Host", "x"),
            ("X-Request-Id", "r"),
            ("Content-Type", "a/b"),
        ]
    )
    assert list(forwardable(headers).items()) == [("X-Request-Id", "r"), ("Content-Type", "a/b")]


@pytest.mark.parametrize(
    ("path", "closed"),
    [
        ("/v2/repository", True),
        ("/v2/repository/index", True),
        ("//v2//repository/models/x/unload", True),
        ("/v2/repository/", True),
        ("/v2/repositoryx", False),
        ("/v2/models/repository", False),
        ("/v2/models/cats-dogs-other/infer", False),
        ("/metrics", True),
        ("//metrics/", True),
        ("/metricsx", False),
    ],
)
def test_closed_paths(path, closed):
    assert (closed_because(path) is not None) is closed


@pytest.mark.parametrize(
    ("path", "dotted"),
    [
        ("/v2/x/../repository", True),
        ("/v2/./models", True),
        ("/health/..", True),
        ("/v2/models/a..b/ready", False),
        ("/v2/.well-known", False),
        ("/", False),
    ],
)
def test_dot_segments(path, dotted):
    assert has_dot_segments(path) is dotted


@pytest.mark.parametrize(
    ("metadata", "refused"),
    [
        ([("authorization", "Bearer abc"), ("x-request-id", "r-1")], None),
        ([("trace-bin", b"\x00\xff")], None),
        ([("x-foo", "a\x01b")], "'x-foo'"),
        ([("x-foo", b"\xff")], "'x-foo'"),
        ([("x-foo", "caf\u00e9")], "'x-foo'"),
    ],
)
def test_grpc_metadata_values_are_printable_ascii(metadata, refused):
    if refused is None:
        assert checked_metadata(metadata) == tuple(metadata)
    else:
        with pytest.raises(answers.Refusal) as refusal:
            checked_metadata(metadata)
        assert refused in refusal.value.description
        assert answers.grpc_code(refusal.value) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("peer", "address"),
    [("ipv4:10.0.0.1:5000", "10.0.0.1"), ("ipv6:[::1]:5000", "::1"), ("unix:/x", None), ("", None)],
)
def test_peer_addresses(peer, address):
    assert peer_address(peer) == address


def test_identity_values_are_header_safe():
    assert passing.identity(Principal("Jos\u00e9 \r\n%", ("a", "b"))) == [
        ("x-auth-subject", "Jos%C3%A9%20%0D%0A%25"),
        ("x-auth-scopes", "a b"),
    ]


def test_trusted_proxies_are_parsed_by_name():
    assert [str(n) for n in passing.parse_networks(" 10.0.0.0/8, ::1 ,")] == [
        "10.0.0.0/8",
        "::1/128",
    ]
    with pytest.raises(ValueError, match="not-an-address"):
        passing.parse_networks("not-an-address")


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("a\r\nb", "a\\r\\nb"),
        ("\x1b[31mred\x00", "\\x1b[31mred\\x00"),
        ("line\u2028sep", "line\\u2028sep"),
        ("Authorization: Bearer abcdefgh12345", "Authorization: Bearer [redacted]"),
        ("t=eyJhbGciOi.eyJzdWIi.c2ln!", "t=[redacted]!"),
        ("a bearer token is required", "a bearer token is required"),
    ],
)
def test_log_text_is_cleaned(text, logged):
    assert logsafe.clean(text) == logged


def test_log_records_and_tracebacks_are_cleaned():
    try:
        raise ValueError("bad\nINFO forged eyJa.eyJb.sig")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "got %s", ("x\ny",), None)
        record.exc_info = __import__("sys").exc_info()
    assert logsafe.SafeRecords().filter(record)
    text = logging.Formatter("%(message)s").format(record)
    first, *rest = text.split("\n")
    assert first == "got x\\ny"
    assert all(line.startswith("    ") for line in rest)
    assert "eyJa" not in text and "[redacted]" in text


def test_refusal_lines_are_limited_and_the_gap_is_said():
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("test.ratelimit")
    logger.addHandler(Capture())
    logger.propagate = False
    logger.setLevel(logging.INFO)
    now = [0.0]
    limited = logsafe.RateLimited(logger, burst=2, period=10, clock=lambda: now[0])
    for n in range(5):
        limited.log(logging.INFO, "refused %d", n)
    now[0] = 11
    limited.log(logging.INFO, "refused %d", 5)
    assert lines == [
        "refused 0",
        "refused 1",
        "refused 5 (and 3 similar lines left out; see /metrics)",
    ]


def test_predictor_log_records_are_escaped_arguments_and_all():
    from predictor.logsafe import EscapedRecords

    error = ValueError("unknown input 'x\r\n2026 INFO forged'")
    record = logging.LogRecord(
        "p", logging.WARNING, __file__, 1, "refused %s: %d", (error, 7), None
    )
    assert EscapedRecords().filter(record)
    line = logging.Formatter("%(message)s").format(record)
    assert line == "refused unknown input 'x\\r\\n2026 INFO forged': 7"


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
    assert rest_route(path) == expected


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
    assert grpc_route(method) == expected
