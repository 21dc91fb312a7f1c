"""`refusals`: each refusal's answer on both protocols (status, RFC 6750 challenge, JSON body,
gRPC code), and a challenge that stays one valid header whatever the description holds."""

from __future__ import annotations

import json
import re

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth_proxy import refusals

pytestmark = pytest.mark.unit

REALM = "cats-dogs-other"
PROPERTIES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ANSWERS = {
    "no token": (refusals.no_token(), 401, f'Bearer realm="{REALM}"', "UNAUTHENTICATED"),
    "invalid token": (
        refusals.invalid_token("token expired"),
        401,
        f'Bearer realm="{REALM}", error="invalid_token", error_description="token expired"',
        "UNAUTHENTICATED",
    ),
    "insufficient scope": (
        refusals.insufficient_scope("the token lacks the scope x", "x"),
        403,
        f'Bearer realm="{REALM}", error="insufficient_scope", '
        'error_description="the token lacks the scope x", scope="x"',
        "PERMISSION_DENIED",
    ),
    "invalid request": (
        refusals.invalid_request("two"),
        400,
        f'Bearer realm="{REALM}", error="invalid_request", error_description="two"',
        "UNAUTHENTICATED",
    ),
    "no keys": (refusals.keys_unavailable("down"), 503, None, "UNAVAILABLE"),
    "too large": (refusals.too_large("big"), 413, None, "RESOURCE_EXHAUSTED"),
    "timeout": (refusals.request_timeout("slow"), 408, None, "DEADLINE_EXCEEDED"),
    "closed": (refusals.not_found("closed"), 404, None, "UNIMPLEMENTED"),
    "bad gateway": (refusals.gateway_error(502, "down"), 502, None, "UNAVAILABLE"),
    "gateway timeout": (refusals.gateway_error(504, "slow"), 504, None, "DEADLINE_EXCEEDED"),
}


@pytest.mark.parametrize("case", list(ANSWERS))
def test_each_refusal_has_its_answer_on_both_protocols(case):
    refusal, status, challenge, code = ANSWERS[case]
    response = refusals.rest_response(refusal, REALM)
    assert response.status == status
    assert response.headers.get("WWW-Authenticate") == challenge
    body = json.loads(response.body)
    assert body["error"] == (refusal.error or "unauthorized")
    assert body["error_description"] == refusal.description
    assert refusals.grpc_code(refusal) == getattr(grpc.StatusCode, code)


def test_a_challenge_carries_only_what_rfc_6750_allows():
    challenge = refusals.www_authenticate(refusals.invalid_token('a "quoted"\\ é\r\nX: y'), REALM)
    assert challenge.endswith('error_description="a ?quoted?? ???X: y"')


@PROPERTIES
@given(st.text(max_size=500), st.text(max_size=50))
def test_a_challenge_is_always_a_valid_header(description, realm):
    challenge = refusals.www_authenticate(refusals.invalid_token(description), realm)
    assert re.fullmatch(r"[\x20-\x7e]+", challenge)
    assert len(challenge) < 800
