"""Signing keys: rotation is picked up at once, made-up kids cannot hammer the issuer, an
issuer outage changes nothing for valid tokens, and with no keys at all the proxy says 503."""

from __future__ import annotations

import time

import httpx
import pytest

from support.issuer import Issuer, issuer_env
from support.servers import free_port, start_proxy

METADATA = "/v2/models/cats-dogs-other"


def get(proxy, token: str) -> httpx.Response:
    return httpx.get(
        f"http://127.0.0.1:{proxy.http_port}{METADATA}",
        headers={"Authorization": f"Bearer {token}"},
    )


def test_key_rotation_is_picked_up_by_refetching_on_an_unknown_kid(proxy, issuer):
    assert get(proxy, issuer.token()).status_code == 200
    time.sleep(2.1)  # past JWKS_MIN_REFRESH_SECONDS since the last fetch
    new_key = issuer.rotate("key-2")
    before = issuer.jwks_fetches
    assert get(proxy, issuer.token(new_key)).status_code == 200
    assert issuer.jwks_fetches == before + 1
    assert get(proxy, issuer.token(new_key)).status_code == 200  # cached now: no new fetch
    assert issuer.jwks_fetches == before + 1


def test_a_flood_of_made_up_kids_fetches_the_key_set_at_most_once(proxy, issuer):
    time.sleep(2.1)
    before = issuer.jwks_fetches
    started = time.monotonic()
    with httpx.Client() as client:
        for n in range(100):
            token = issuer.token(headers={"kid": f"made-up-{n}"})
            response = client.get(
                f"http://127.0.0.1:{proxy.http_port}{METADATA}",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 401
    assert time.monotonic() - started < 2, "the flood took longer than the refetch interval"
    assert issuer.jwks_fetches - before <= 1


def test_valid_tokens_keep_working_while_the_issuer_is_down(issuer, predictor, tmp_path):
    own_issuer = Issuer()
    process = start_proxy(
        tmp_path,
        **issuer_env(own_issuer),
        JWKS_CACHE_TTL_SECONDS="1",
        upstream=predictor,
    )
    try:
        assert get(process, own_issuer.token()).status_code == 200
        own_issuer.down()
        time.sleep(2.5)  # at least one failed refresh
        assert get(process, own_issuer.token()).status_code == 200
        assert "keeping the last good keys" in process.log()
        ready = httpx.get(f"http://127.0.0.1:{process.admin_port}/readyz")
        assert ready.status_code == 200
    finally:
        own_issuer.down()
        process.stop()


def test_with_no_keys_ever_fetched_protected_routes_answer_503(predictor, tmp_path):
    dead_issuer = f"http://127.0.0.1:{free_port()}/"
    process = start_proxy(
        tmp_path,
        OAUTH2_ISSUER=dead_issuer,
        OAUTH2_AUDIENCE="https://cats-dogs.example.com",
        upstream=predictor,
    )
    try:
        base = f"http://127.0.0.1:{process.http_port}"
        response = httpx.get(base + METADATA, headers={"Authorization": "Bearer a.b.c"})
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        assert "no signing key" in response.json()["error_description"]
        assert dead_issuer not in response.text  # the details are /readyz's, not a caller's
        ready = httpx.get(f"http://127.0.0.1:{process.admin_port}/readyz")
        assert ready.status_code == 503
        assert dead_issuer in ready.json()["reason"]
        # the predictor's probes still pass: the kubelet sees the predictor, not the issuer
        assert httpx.get(base + "/v2/health/live").status_code == 200
        assert httpx.get(base + "/health").status_code == 200
    finally:
        process.stop()


@pytest.mark.parametrize("jwks_setting", ["relative", "absolute"])
def test_jwks_uri_relative_to_the_issuer_or_absolute(predictor, tmp_path, jwks_setting):
    own_issuer = Issuer()
    jwks = "jwks.json" if jwks_setting == "relative" else own_issuer.url + "jwks.json"
    process = start_proxy(
        tmp_path,
        **issuer_env(own_issuer),
        OAUTH2_JWKS_URI=jwks,
        upstream=predictor,
    )
    try:
        assert get(process, own_issuer.token()).status_code == 200
        assert own_issuer.jwks_fetches == 1
    finally:
        own_issuer.down()
        process.stop()
