"""`forwarded_headers`: which client headers are identity claims (dropped), the identity the
proxy sets instead (header-safe whatever the `sub`), and the `X-Forwarded-For` the predictor
may believe (the peer, appended to a trusted proxy's chain only)."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auth_proxy import forwarded_headers
from auth_proxy.settings import parse_networks
from auth_proxy.tokens import Principal

pytestmark = pytest.mark.unit

PROPERTIES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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
    assert forwarded_headers.is_identity(name) is identity


def test_identity_values_are_header_safe():
    assert forwarded_headers.identity_headers(Principal("Jos\u00e9 \r\n%", ("a", "b"))) == [
        ("x-auth-subject", "Jos%C3%A9%20%0D%0A%25"),
        ("x-auth-scopes", "a b"),
    ]


@PROPERTIES
@given(st.text(), st.lists(st.from_regex(r"[\x21\x23-\x5b\x5d-\x7e]+", fullmatch=True)))
def test_the_identity_passed_on_is_header_safe(subject, scopes):
    for _, value in forwarded_headers.identity_headers(Principal(subject, tuple(scopes))):
        assert re.fullmatch(r"[\x20-\x7e]*", value)
        assert value == value.strip()


@pytest.mark.parametrize(
    ("pairs", "peer", "trusted", "expected"),
    [
        ([("X-Forwarded-For", "203.0.113.66")], "10.0.0.5", (), "10.0.0.5"),
        (
            [("X-Forwarded-For", "203.0.113.66")],
            "10.0.0.5",
            ("10.0.0.0/8",),
            "203.0.113.66, 10.0.0.5",
        ),
        ([], "::1", ("::1",), "::1"),
        ([("X-Forwarded-For", "1.2.3.4")], None, ("0.0.0.0/0",), "unknown"),
    ],
)
def test_forwarded_for_follows_the_trust_model(pairs, peer, trusted, expected):
    networks = parse_networks(",".join(trusted))
    passed = dict(forwarded_headers.upstream_headers(pairs, peer, networks))
    assert passed["x-forwarded-for"] == expected
