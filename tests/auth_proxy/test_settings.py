"""`settings`: read from the environment, the course's variables, and refusals of unsafe ones."""

from __future__ import annotations

import pytest

from auth_proxy.settings import SettingsError, jwks_uri_for, load_settings, parse_networks

pytestmark = pytest.mark.unit

BASE = {"OAUTH2_ISSUER": "https://tenant.eu.auth0.com/", "OAUTH2_AUDIENCE": "https://api"}


def test_the_courses_relative_jwks_uri_is_joined_to_the_issuer():
    assert (
        jwks_uri_for("https://tenant.eu.auth0.com/", ".well-known/jwks.json")
        == "https://tenant.eu.auth0.com/.well-known/jwks.json"
    )
    assert jwks_uri_for("https://idp/realms/x", "certs") == "https://idp/realms/x/certs"
    assert jwks_uri_for("https://idp/", "file:///keys/jwks.json") == "file:///keys/jwks.json"
    assert jwks_uri_for("https://idp/", None) is None  # discovery


def test_defaults():
    settings = load_settings(BASE)
    assert settings.rules.scope == "get::prediction"
    assert settings.rules.algorithms == ("RS256",)
    assert settings.rules.leeway_seconds == 60
    assert settings.jwks_ttl_seconds == 300
    assert settings.upstream_http == "http://127.0.0.1:8080"
    assert settings.upstream_grpc == "127.0.0.1:8081"
    assert "/v2/models/cats-dogs-other/ready" in settings.public_paths


def test_several_audiences_and_algorithms():
    settings = load_settings(
        {**BASE, "OAUTH2_AUDIENCE": "a, b", "OAUTH2_ALGORITHMS": "RS256,ES256,PS256"}
    )
    assert settings.rules.audiences == ("a", "b")
    assert settings.rules.algorithms == ("RS256", "ES256", "PS256")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OAUTH2_AUDIENCE": "x"}, "OAUTH2_ISSUER is required"),
        ({"OAUTH2_ISSUER": "https://i/"}, "OAUTH2_AUDIENCE is required"),
        ({**BASE, "OAUTH2_ALGORITHMS": "RS256,HS256"}, "may not include HS256"),
        ({**BASE, "OAUTH2_ALGORITHMS": "none"}, "may not include none"),
        ({**BASE, "PROXY_HTTP_PORT": "eighty"}, "PROXY_HTTP_PORT must be a number"),
        ({**BASE, "OAUTH2_AUDIENCE": " , "}, "OAUTH2_AUDIENCE is required"),
        (
            {**BASE, "PUBLIC_GRPC_METHODS": "/inference.GRPCInferenceService/ModelReady"},
            "PUBLIC_GRPC_METHODS may hold only",
        ),
        ({**BASE, "UPSTREAM_TIMEOUT_SECONDS": "0"}, "must be greater than 0"),
        ({**BASE, "UPSTREAM_TIMEOUT_SECONDS": "nan"}, "must be a finite number"),
        ({**BASE, "OAUTH2_LEEWAY_SECONDS": "-5"}, "must be at least 0"),
        ({**BASE, "TRUSTED_PROXIES": "10.0.0.0/8,router"}, "not an address or network: 'router'"),
    ],
)
def test_unsafe_or_missing_settings_are_refused(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_trusted_proxies_are_parsed_by_name():
    assert [str(n) for n in parse_networks(" 10.0.0.0/8, ::1 ,")] == ["10.0.0.0/8", "::1/128"]
    with pytest.raises(ValueError, match="not-an-address"):
        parse_networks("not-an-address")
