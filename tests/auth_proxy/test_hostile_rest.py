"""The proxy's REST port against a hostile client: raw sockets where an HTTP client would
normalise the request, the echo server where the test must see what was forwarded or what the
upstream would have answered, the real predictor where what is served must not change. Each
test names the issue's observation it answers."""

from __future__ import annotations

import base64
import json
import re
import socket
import time

import httpx
import pytest

from support.clients import raw_exchange, status_of
from support.issuer import Issuer, issuer_env
from support.servers import start_proxy

METADATA = "/v2/models/cats-dogs-other"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def echoed(response: httpx.Response) -> dict[str, list[str]]:
    """The headers the echo upstream received, by lower-case name."""
    assert response.status_code == 200, response.text
    headers: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        headers.setdefault(name, []).append(value)
    return headers


def unsigned(header: dict, claims: dict | None = None) -> str:
    """A JWT with the given header and a garbage signature: refused, but parsed first."""

    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims or {'sub': 'x'})}.c2lnbmF0dXJl"


def new_log(process, before: int) -> str:
    return process.log()[before:]


# 1. A prediction token cannot change what is served.

# Request targets that are each a different request on the wire (sent as raw bytes: an HTTP
# client would normalise some of them) and each, once decoded, under the model-repository
# extension. Dot segments are another rule's (test_dot_segments_are_refused_...).
CLOSED = [
    "/v2/repository/models/cats-dogs-other/unload",
    "/v2/repository/models/cats-dogs-other/load",
    "/v2/repository/index",
    "/v2/repository",
    "/v2/repository/",
    "/v2//repository/models/cats-dogs-other/unload",
    "//v2/repository/index",
    "/v2/repository%2Fmodels%2Fcats-dogs-other%2Funload",
    "/v2/%72epository/index",
    "/v2/repository/index?ready=true",
]
REPOSITORY_CLOSED = {
    "error": "not_found",
    "error_description": "no such route: the model-repository extension is not served",
}


def raw_post(target: str, token: str) -> bytes:
    return (
        f"POST {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()


def body_of(answer: bytes) -> dict:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


@pytest.mark.parametrize("target", CLOSED)
def test_the_model_repository_is_closed_to_an_inference_token(
    recording_proxy, echo_server, issuer, target
):
    """In front of an upstream that answers 200 to these very requests: only the proxy's rule
    can refuse them, with a valid inference token, and nothing reaches the upstream."""
    request = raw_post(target, issuer.token())
    direct = raw_exchange(echo_server.port, request)
    assert status_of(direct) == 200
    assert echo_server.received[-1] == ("POST", target)  # the request line as written
    received = len(echo_server.received)
    answer = raw_exchange(recording_proxy.http_port, request)
    assert (status_of(answer), body_of(answer)) == (404, REPOSITORY_CLOSED)
    assert echo_server.received[received:] == []


def test_a_path_beside_the_model_repository_is_forwarded(recording_proxy, echo_server, issuer):
    """The control: the same token and request, one letter off the closed prefix, pass."""
    answer = raw_exchange(recording_proxy.http_port, raw_post("/v2/repositoryx", issuer.token()))
    assert status_of(answer) == 200
    assert echo_server.received[-1] == ("POST", "/v2/repositoryx")


def test_the_predictor_mounts_no_repository_routes(predictor):
    for path in CLOSED[:3]:
        assert httpx.post(predictor.url + path).status_code == 404
    assert httpx.get(predictor.url + "/v2/models/cats-dogs-other/ready").status_code == 200
    extensions = httpx.get(predictor.url + "/v2").json()["extensions"]
    assert "model_repository_extension" not in extensions
    assert "binary_tensor_data" in extensions
    paths = httpx.get(predictor.url + "/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/v2/repository")]


# 3. Tokens never reach the log, however the request is broken.


CHALLENGE = 'Bearer realm="cats-dogs-other"'
# Each broken `Authorization` line ({} is a valid token), and the status and WWW-Authenticate
# the proxy answers it with (None: no challenge).
BROKEN_AUTHORIZATION = {
    # Not HTTP: the request parser refuses the line before any token is read, 400, no challenge.
    "bare LF": (b"Authorization: Bearer {}\n", 400, None),
    "0x01": (b"Authorization: Bearer {}\x01\r\n", 400, None),
    "NUL": (b"Authorization: Bearer {}\x00\r\n", 400, None),
    "DEL": (b"Authorization: Bearer {}\x7f\r\n", 400, None),
    "VT": (b"Authorization: Bearer {} \x0b\r\n", 400, None),
    # HTTP, but no bearer credentials (RFC 6750 3.1: the bare challenge) or a broken token.
    "tab after Bearer": (b"Authorization: Bearer\t{}\r\n", 401, CHALLENGE),
    "no space after Bearer": (b"Authorization: Bearer{}\r\n", 401, CHALLENGE),
    "text after the token": (
        b"Authorization: Bearer {} x\r\n",
        401,
        f'{CHALLENGE}, error="invalid_token", '
        'error_description="malformed token: not a signed JWT"',
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_AUTHORIZATION))
def test_a_broken_authorization_line_is_refused_without_logging_the_token(
    recording_proxy, echo_server, issuer, case
):
    line, status, challenge = BROKEN_AUTHORIZATION[case]
    token = issuer.token()
    before, received = len(recording_proxy.log()), len(echo_server.received)
    request = (
        b"GET /v2/models/cats-dogs-other HTTP/1.1\r\nHost: x\r\n"
        + line.replace(b"{}", token.encode())
        + b"Connection: close\r\n\r\n"
    )
    answer = raw_exchange(recording_proxy.http_port, request)
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = dict(field.split(": ", 1) for field in head[1:])
    assert (status_of(answer), headers.get("WWW-Authenticate")) == (status, challenge)
    assert echo_server.received[received:] == []
    time.sleep(0.2)
    log = new_log(recording_proxy, before)
    assert token not in log
    assert token.split(".")[2] not in log
    assert "Traceback" not in log and " ERROR " not in log
    assert "refused " in log


def test_a_refused_token_is_never_logged_on_either_port(recording_proxy, issuer):
    import grpc

    stranger = Issuer()  # a key the proxy does not trust: a signature that fails
    try:
        bad = stranger.token()
    finally:
        stranger.down()
    expired = issuer.token(exp=int(time.time()) - 3600)
    before = len(recording_proxy.log())
    for token in (bad, expired, "opaque-token-value-42"):
        httpx.get(f"http://127.0.0.1:{recording_proxy.http_port}{METADATA}", headers=auth(token))
        with grpc.insecure_channel(f"127.0.0.1:{recording_proxy.grpc_port}") as channel:
            call = channel.unary_unary("/inference.GRPCInferenceService/ModelMetadata")
            with pytest.raises(grpc.RpcError):
                call(b"", metadata=[("authorization", f"Bearer {token}")], timeout=5)
    time.sleep(0.2)
    log = new_log(recording_proxy, before)
    assert "refused" in log
    for token in (bad, expired):
        assert token not in log and token.split(".")[2] not in log
    assert "opaque-token-value-42" not in log


# 4. Nothing a client writes forges a log line or breaks a header.


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "RS256\n2026-01-01 00:00:00,000 1 auth_proxy INFO forged line", "kid": "key-1"},
        {"alg": "RS256\r\nX-Injected: yes", "kid": "key-1"},
        {"alg": "A" * 5000, "kid": "key-1"},
        {"alg": "RS256", "kid": "k" * 5000},
        {"alg": "RS256", "kid": "key\u2028\x1b[31mred"},
        {"alg": ["RS256"], "kid": {"a": 1}},
    ],
    ids=["LF in alg", "CRLF in alg", "5 KB alg", "5 KB kid", "escapes in kid", "mistyped"],
)
def test_attacker_text_in_a_token_is_escaped_and_shortened(recording_proxy, header):
    token = unsigned(header)
    before = len(recording_proxy.log())
    response = httpx.get(
        f"http://127.0.0.1:{recording_proxy.http_port}{METADATA}", headers=auth(token)
    )
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert len(challenge) < 400
    assert re.fullmatch(r"[\x20-\x7e]+", challenge)
    assert len(response.json()["error_description"]) < 200
    time.sleep(0.2)
    for line in new_log(recording_proxy, before).splitlines():
        assert "forged" not in line or "refused" in line
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u2028]", line)
        assert len(line) < 1000


@pytest.mark.parametrize(
    "path", ["/v2/models/%0d%0aFORGED", "/x%1b[31mred%1b[0m", "/a%00b", "/%e2%80%a8sep"]
)
def test_control_characters_in_a_path_do_not_reach_the_log(recording_proxy, path):
    before = len(recording_proxy.log())
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    assert status_of(raw_exchange(recording_proxy.http_port, request)) == 401
    time.sleep(0.2)
    log = new_log(recording_proxy, before)
    assert "refused GET" in log
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u2028]", log)
    assert all(line[:4].isdigit() for line in log.splitlines())  # every line is a record


# 5. Clients do not choose the address the predictor sees.


def test_forwarded_addresses_come_from_the_proxy(recording_proxy, issuer):
    response = httpx.get(
        f"http://127.0.0.1:{recording_proxy.http_port}/anything",
        headers={
            **auth(issuer.token()),
            "X-Forwarded-For": "203.0.113.66",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
            "Forwarded": "for=203.0.113.66;proto=https",
            "X-Real-IP": "203.0.113.66",
        },
    )
    headers = echoed(response)
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    for name in ("forwarded", "x-real-ip", "x-forwarded-proto", "x-forwarded-host"):
        assert name not in headers
    assert "203.0.113.66" not in response.text


def test_a_trusted_proxys_chain_is_kept_and_extended(issuer, echo_url, tmp_path):
    process = start_proxy(
        tmp_path, **issuer_env(issuer), UPSTREAM_HTTP=echo_url, TRUSTED_PROXIES="127.0.0.0/8"
    )
    try:
        response = httpx.get(
            f"http://127.0.0.1:{process.http_port}/anything",
            headers={
                **auth(issuer.token()),
                "X-Forwarded-For": "203.0.113.66",
                "X-Forwarded-Proto": "https",
            },
        )
    finally:
        process.stop()
    headers = echoed(response)
    assert headers["x-forwarded-for"] == ["203.0.113.66, 127.0.0.1"]
    assert headers["x-forwarded-proto"] == ["https"]


# 6. Identity headers: only the proxy sets them.


def test_every_identity_header_a_client_sends_is_dropped(recording_proxy, issuer):
    response = httpx.get(
        f"http://127.0.0.1:{recording_proxy.http_port}/anything",
        headers={
            **auth(issuer.token(sub="alice")),
            "X-Auth-Role": "admin",
            "X-AUTH-SUBJECT": "mallory",
            "Authorization-Bin": "c2VjcmV0",
            "Authorization2": "Bearer x",
        },
    )
    headers = echoed(response)
    assert headers["x-auth-subject"] == ["alice"]
    assert "x-auth-role" not in headers
    assert not [name for name in headers if name.startswith("authorization")]


# 7. Odd but signed claims: refused by name, or passed on in a header-safe form.

ODD_CLAIMS = {
    "object in aud": ({"aud": ["https://cats-dogs.example.com", {"x": 1}]}, 401, "aud claim"),
    "number aud": ({"aud": 7}, 401, "aud claim"),
    "huge exp": ({"exp": 10**400}, 401, "exp claim is not a NumericDate"),
    "NaN exp": ({"exp": float("nan")}, 401, "exp claim is not a NumericDate"),
    "Infinity exp": ({"exp": float("inf")}, 401, "exp claim is not a NumericDate"),
    "string exp": ({"exp": "9999999999"}, 401, "exp claim is not a NumericDate"),
    "boolean exp": ({"exp": True}, 401, "exp claim is not a NumericDate"),
    "string nbf": ({"nbf": "0"}, 401, "nbf claim is not a NumericDate"),
    "NaN iat": ({"iat": float("nan")}, 401, "iat claim is not a NumericDate"),
    "CRLF in scp": ({"scp": ["get::prediction\r\nx"]}, 401, "scp claim holds a malformed"),
    "permissions string": (
        {"scope": None, "permissions": "get::prediction"},
        401,
        "permissions claim is not a list",
    ),
    "scope as a list": ({"scope": ["get::prediction"]}, 401, "scope claim is not a string"),
    "NBSP in scope": ({"scope": "openid\u00a0get::prediction"}, 401, "malformed scope"),
    "0x1f in scope": ({"scope": "openid\x1fget::prediction"}, 401, "malformed scope"),
    "LF in scope": ({"scope": "openid\nget::prediction"}, 401, "malformed scope"),
    "number sub": ({"sub": 42}, 401, "Subject must be a string"),
}


@pytest.mark.parametrize("case", list(ODD_CLAIMS))
def test_odd_claims_are_refused_by_name(proxy, issuer, case):
    claims, status, description = ODD_CLAIMS[case]
    response = httpx.get(
        f"http://127.0.0.1:{proxy.http_port}{METADATA}", headers=auth(issuer.token(**claims))
    )
    assert response.status_code == status, response.text
    assert description in response.json()["error_description"]


@pytest.mark.parametrize(
    ("subject", "forwarded"),
    [
        ("José ☃", "Jos%C3%A9%20%E2%98%83"),
        ("a\r\nX-Auth-Role: admin", "a%0D%0AX-Auth-Role:%20admin"),
        ("nul\x00byte", "nul%00byte"),
        ("100%", "100%25"),
    ],
    ids=["non-ASCII", "CRLF", "NUL", "percent"],
)
def test_an_odd_subject_is_passed_on_percent_encoded(recording_proxy, issuer, subject, forwarded):
    response = httpx.get(
        f"http://127.0.0.1:{recording_proxy.http_port}/anything",
        headers=auth(issuer.token(sub=subject)),
    )
    headers = echoed(response)
    assert headers["x-auth-subject"] == [forwarded]
    assert "x-auth-role" not in headers


def test_an_odd_subject_still_reaches_the_predictor(proxy, issuer):
    response = httpx.get(
        f"http://127.0.0.1:{proxy.http_port}{METADATA}",
        headers=auth(issuer.token(sub="José\r\n\x00")),
    )
    assert response.status_code == 200


# 8. Protocol politeness comes after authentication.


def test_expect_continue_is_answered_only_after_the_token(recording_proxy, issuer):
    head = (
        "POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        "Expect: 100-continue\r\nConnection: close\r\n"
    )
    refused = raw_exchange(recording_proxy.http_port, (head + "\r\n").encode(), wait=3)
    assert status_of(refused) == 401
    assert b"100 Continue" not in refused

    with socket.create_connection(("127.0.0.1", recording_proxy.http_port), timeout=5) as sock:
        sock.sendall(f"{head}Authorization: Bearer {issuer.token()}\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"hello")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert status_of(answer) == 200
    assert b'"body_length": 5' in answer


def test_an_unknown_expectation_is_refused(recording_proxy, issuer):
    request = (
        f"POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: teapot\r\n"
        f"Authorization: Bearer {issuer.token()}\r\nConnection: close\r\n\r\nx"
    ).encode()
    assert status_of(raw_exchange(recording_proxy.http_port, request)) == 417


def test_two_authorization_headers_are_refused(recording_proxy, issuer):
    token = issuer.token()
    request = (
        f"GET /anything HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = raw_exchange(recording_proxy.http_port, request)
    assert status_of(answer) == 400
    assert b'error="invalid_request"' in answer


# 9. Timeouts and limits.


def test_silent_and_slow_connections_are_closed(recording_proxy):
    """CLIENT_IDLE_TIMEOUT_SECONDS is 2 here: a connection that sends nothing, or a request head
    that never ends, is closed by then, however many there are."""
    sockets = []
    for n in range(60):
        sock = socket.create_connection(("127.0.0.1", recording_proxy.http_port), timeout=10)
        if n % 2:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sockets.append(sock)
    started = time.monotonic()
    try:
        for sock in sockets:
            assert sock.recv(1024) == b""  # closed by the proxy
    finally:
        for sock in sockets:
            sock.close()
    assert time.monotonic() - started < 6


@pytest.mark.parametrize("length", [1_000_000, 2_000_000], ids=["whole", "streamed"])
def test_a_body_that_never_comes_gets_408(recording_proxy, issuer, length):
    request = (
        f"POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
        f"Authorization: Bearer {issuer.token()}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    answer = raw_exchange(recording_proxy.http_port, request + b"x" * 1000, wait=8)
    assert status_of(answer) == 408
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "body_head",
    [
        "Content-Length: 1000000\r\n\r\n",
        "Transfer-Encoding: chunked\r\n\r\n300000\r\n" + "x" * 64,
    ],
    ids=["declared", "chunked"],
)
def test_probe_requests_carry_no_body(recording_proxy, body_head):
    request = f"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{body_head}".encode()
    answer = raw_exchange(recording_proxy.http_port, request, wait=3)
    assert status_of(answer) == 400
    assert b"no body" in answer


def test_an_abandoned_upload_is_not_an_upstream_error(recording_proxy, issuer):
    before = len(recording_proxy.log())
    for length in (500_000, 2_000_000):
        with socket.create_connection(("127.0.0.1", recording_proxy.http_port)) as sock:
            sock.sendall(
                (
                    f"POST /anything HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
                    f"Authorization: Bearer {issuer.token()}\r\n\r\n"
                ).encode()
                + b"x" * 100_000
            )
            time.sleep(0.3)
    time.sleep(0.5)
    log = new_log(recording_proxy, before)
    assert "502" not in log and "unreachable" not in log
    assert "Traceback" not in log
    metrics = httpx.get(f"http://127.0.0.1:{recording_proxy.admin_port}/metrics").text
    assert 'auth_proxy_refusals_total{door="rest",reason="incomplete_body"}' in metrics


def test_refusals_are_counted_and_their_log_lines_limited(echo_proxy):
    """echo_proxy has the default REFUSAL_LOG_LINES: 20 lines per 10 s, whatever the flood."""
    before = len(echo_proxy.log())
    with httpx.Client(base_url=f"http://127.0.0.1:{echo_proxy.http_port}") as client:
        for _ in range(300):
            assert client.get(METADATA).status_code == 401
    for _ in range(30):  # malformed requests: no traceback, no ERROR line each
        raw_exchange(echo_proxy.http_port, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", wait=2)
    time.sleep(0.2)
    log = new_log(echo_proxy, before)
    assert 10 <= len(log.splitlines()) <= 22
    assert "Traceback" not in log and " ERROR " not in log
    metrics = httpx.get(f"http://127.0.0.1:{echo_proxy.admin_port}/metrics").text
    counted = re.search(r'refusals_total\{door="rest",reason="no_token"\} (\d+)', metrics)
    assert counted and float(counted.group(1)) >= 300
    assert 'reason="malformed_request"' in metrics


def test_an_oversized_key_set_is_refused(tmp_path):
    issuer = Issuer(padding=3 * 1024 * 1024)
    try:
        process = start_proxy(
            tmp_path,
            **issuer_env(issuer),
            UPSTREAM_HTTP="http://127.0.0.1:9",
            JWKS_MAX_BYTES="1048576",
        )
        try:
            ready = httpx.get(f"http://127.0.0.1:{process.admin_port}/readyz")
        finally:
            process.stop()
    finally:
        issuer.down()
    assert ready.status_code == 503
    assert "JWKS_MAX_BYTES" in ready.json()["reason"]


# The second round: what an independent attacker found past the first.


@pytest.mark.parametrize("expect", [b"", b"Expect: 100-continue\r\nContent-Length: 1\r\n"])
def test_a_token_that_is_not_ascii_is_401(recording_proxy, expect):
    before = len(recording_proxy.log())
    request = (
        b"GET /v2/models/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer \xe9\xff\r\n"
        + expect
        + b"Connection: close\r\n\r\n"
    )
    answer = raw_exchange(recording_proxy.http_port, request)
    assert status_of(answer) == 401
    assert b"malformed token" in answer
    time.sleep(0.2)
    log = new_log(recording_proxy, before)
    assert "Traceback" not in log and " ERROR " not in log


@pytest.mark.parametrize(
    "path",
    [
        "/v2/x/../repository/models/cats-dogs-other/unload",
        "/v2/x/%2e%2e/repository/index",
        "/v2/models/../repository/index",
        "/v2/./models/cats-dogs-other/infer",
        "/health/..",
    ],
)
def test_dot_segments_are_refused_before_they_can_be_resolved(recording_proxy, issuer, path):
    """The upstream client would resolve them: the path checked would not be the path sent."""
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {issuer.token()}\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = raw_exchange(recording_proxy.http_port, request)
    assert status_of(answer) == 400
    assert b"dot segments" in answer


def test_underscore_identity_headers_are_dropped(recording_proxy, issuer):
    response = httpx.get(
        f"http://127.0.0.1:{recording_proxy.http_port}/anything",
        headers={**auth(issuer.token(sub="alice")), "X_Auth_Subject": "mallory"},
    )
    headers = echoed(response)
    assert headers["x-auth-subject"] == ["alice"]
    assert "x_auth_subject" not in headers
