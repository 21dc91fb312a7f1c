"""The proxy against a real, certified OpenID provider (panva's oidc-provider, tests/oidc):
tokens obtained the standard way (tools/oauth2_token.py: discovery, form-encoded client
credentials, `resource`), RS256 / ES256 / PS256, scope or none, opaque tokens, rotation by
restarting the provider with new keys, the provider down and back, an issuer that differs by
one slash, keys that cannot verify the allowed algorithm, and the deploy workflow's smoke test.
Tokens no real provider would issue (expired, forged, malformed) are the hand-made issuer's
job (test_rest_tokens.py, test_hostile_*.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from support.clients import MODEL, grpc_stub
from support.images import CAT
from support.oidc_provider import (
    AUDIENCE,
    CLIENT,
    NO_SCOPE_CLIENT,
    ODD_CLIENT,
    SCOPE,
    OidcProvider,
)
from support.servers import ROOT, start_proxy
from tools.oauth2_token import TokenError, get_token

METADATA = f"/v2/models/{MODEL}"


def proxy_for(provider, predictor, folder, **env):
    return start_proxy(
        folder,
        **provider.proxy_settings(),
        upstream=predictor,
        **env,
    )


def token(provider, client=CLIENT, **options) -> str:
    return get_token(provider.url, AUDIENCE, *client, **options)


def status(door, token_value: str, path: str = METADATA) -> int:
    headers = {"Authorization": f"Bearer {token_value}"}
    return httpx.get(door.url + path, headers=headers, timeout=30).status_code


@pytest.mark.parametrize("auth", ["basic", "post"])
def test_a_token_from_the_standard_grant_is_accepted_on_both_protocols(provider, door, auth):
    value = token(provider, auth=auth)
    header = json.loads(__import__("base64").urlsafe_b64decode(value.split(".")[0] + "=="))
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    answer = httpx.post(
        door.url + "/upload",
        files={"file": ("cat.png", CAT.read_bytes())},
        headers={"Authorization": f"Bearer {value}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    channel, stub = grpc_stub(door.grpc_target)
    with channel:
        metadata = stub.ModelMetadata(
            pb.ModelMetadataRequest(name=MODEL), metadata=[("authorization", f"Bearer {value}")]
        )
    assert metadata.name == MODEL


@pytest.mark.parametrize("auth", ["basic", "client_secret_post"])
def test_credentials_with_reserved_characters_are_encoded_right(provider, door, auth):
    assert status(door, token(provider, ODD_CLIENT, auth=auth)) == 200


def test_a_client_not_granted_the_scope_gets_a_token_and_a_403(provider, door):
    with pytest.raises(TokenError, match="invalid_scope"):
        token(provider, NO_SCOPE_CLIENT)  # asking for the scope it was not granted
    value = token(provider, NO_SCOPE_CLIENT, scope="")
    answer = httpx.get(door.url + METADATA, headers={"Authorization": f"Bearer {value}"})
    assert answer.status_code == 403
    assert SCOPE in answer.headers["www-authenticate"]


def test_an_opaque_token_without_a_resource_is_401(provider, door):
    endpoint = httpx.get(provider.url + "/.well-known/openid-configuration").json()
    answer = httpx.post(
        endpoint["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": SCOPE},
        auth=CLIENT,
    )
    opaque = answer.json()["access_token"]
    assert opaque.count(".") == 0  # not a JWT: the provider issues those for a resource only
    assert status(door, opaque) == 401


def test_the_helper_names_what_went_wrong_and_never_the_secret(provider):
    with pytest.raises(TokenError) as refused:
        get_token(provider.url, AUDIENCE, CLIENT[0], "wrong-secret")
    assert "invalid_client" in str(refused.value) and "wrong-secret" not in str(refused.value)
    with pytest.raises(TokenError, match="invalid_target"):
        get_token(provider.url, "https://not-the-api", *CLIENT)
    with pytest.raises(TokenError, match="cannot reach"):
        get_token("http://127.0.0.1:9", AUDIENCE, *CLIENT, timeout=2)


@pytest.mark.parametrize("algorithm", ["ES256", "PS256"])
def test_other_algorithms_with_oauth2_algorithms(algorithm, predictor, tmp_path_factory):
    folder = tmp_path_factory.mktemp(algorithm)
    provider = OidcProvider(folder, algorithm)
    process = proxy_for(provider, predictor, folder)
    try:
        value = token(provider)
        assert json.loads(httpx.get(f"http://127.0.0.1:{process.admin_port}/readyz").text)["ready"]
        assert status(process, value) == 200
    finally:
        process.stop()
        provider.stop()


def test_rotation_new_key_at_once_old_key_gone(predictor, tmp_path_factory):
    """The provider restarts with a new key set and signs with it at once: the proxy follows
    within JWKS_MIN_REFRESH_SECONDS (1 s) and drops the removed key at that fetch."""
    folder = tmp_path_factory.mktemp("rotation")
    provider = OidcProvider(folder)
    process = proxy_for(provider, predictor, folder)
    try:
        old = token(provider)
        assert status(process, old) == 200
        provider.rotate()
        new = token(provider)
        started = time.monotonic()
        while status(process, new) != 200:
            assert time.monotonic() - started < 3, "the new key was not picked up"
            time.sleep(0.2)
        assert status(process, old) == 401  # its key left the set with that fetch
    finally:
        process.stop()
        provider.stop()


def test_the_provider_down_and_back(predictor, tmp_path_factory):
    folder = tmp_path_factory.mktemp("down")
    provider = OidcProvider(folder)
    process = proxy_for(provider, predictor, folder, JWKS_CACHE_TTL_SECONDS="1")
    try:
        value = token(provider)
        provider.stop()
        time.sleep(1.5)  # a refetch has failed by now
        assert "keeping the last good keys" in process.log()
        assert status(process, value) == 200  # the last good keys still serve
        readyz = httpx.get(f"http://127.0.0.1:{process.admin_port}/readyz").json()
        assert readyz["ready"] is True
        provider.rotate()  # back, with new keys: followed at once
        new = token(provider)
        started = time.monotonic()
        while status(process, new) != 200:
            assert time.monotonic() - started < 3, "the new key was not picked up"
            time.sleep(0.2)
    finally:
        process.stop()
        provider.stop()


def test_an_issuer_one_slash_off_is_not_ready_and_says_why(provider, predictor, tmp_path):
    process = start_proxy(
        tmp_path,
        **{**provider.proxy_settings(), "OAUTH2_ISSUER": provider.url + "/"},
        upstream=predictor,
    )
    try:
        readyz = httpx.get(f"http://127.0.0.1:{process.admin_port}/readyz")
        assert readyz.status_code == 503
        reason = readyz.json()["reason"]
        assert f"says the issuer is '{provider.url}'" in reason and "identical" in reason
        assert status(process, token(provider)) == 503
        assert "must be identical" in process.log()
    finally:
        process.stop()


def test_keys_that_cannot_verify_the_allowed_algorithm_are_not_ready(provider, predictor, tmp_path):
    jwks = httpx.get(provider.url + "/jwks").json()
    only_ec = tmp_path / "jwks.json"
    only_ec.write_text(json.dumps({"keys": [k for k in jwks["keys"] if k["kty"] == "EC"]}))
    process = start_proxy(
        tmp_path,
        **provider.proxy_settings("RS256"),
        OAUTH2_JWKS_URI=only_ec.as_uri(),
        upstream=predictor,
    )
    try:
        readyz = httpx.get(f"http://127.0.0.1:{process.admin_port}/readyz")
        assert readyz.status_code == 503
        assert "can verify the allowed algorithms (RS256" in readyz.json()["reason"]
    finally:
        process.stop()


def test_the_ports_open_before_the_first_key_fetch_ends(provider, predictor, tmp_path):
    silent = socket.socket()  # accepts connections, never answers: a fetch that hangs
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    issuer = f"http://127.0.0.1:{silent.getsockname()[1]}"
    started = time.monotonic()
    process = start_proxy(
        tmp_path,
        wait_for_keys=False,
        OAUTH2_ISSUER=issuer,
        OAUTH2_AUDIENCE=AUDIENCE,
        upstream=predictor,
    )
    try:
        assert time.monotonic() - started < 8  # the fetch alone takes 10 s to time out
        readyz = httpx.get(f"http://127.0.0.1:{process.admin_port}/readyz")
        assert readyz.status_code == 503  # "not fetched yet", or the fetch's timeout if slow
        assert httpx.get(process.url + "/v2/health/live").status_code == 200
        assert status(process, "a.b.c") == 503  # no keys yet: "try again", not "bad token"
    finally:
        process.stop()
        silent.close()


def run_smoke(door, provider, client) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OAUTH2_ISSUER": provider.url,
        "OAUTH2_AUDIENCE": AUDIENCE,
        "OAUTH2_CLIENT_ID": client[0],
        "OAUTH2_CLIENT_SECRET": client[1],
    }
    return subprocess.run(
        ["bash", str(ROOT / "tools" / "smoke_test.sh"), door.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_deploy_workflows_smoke_test_passes_against_the_provider(provider, door):
    done = run_smoke(door, provider, CLIENT)
    assert done.returncode == 0, done.stderr
    assert "smoke test passed" in done.stdout
    assert CLIENT[1] not in done.stdout + done.stderr


def test_the_smoke_test_fails_when_the_client_cannot_get_the_scope(provider, door):
    done = run_smoke(door, provider, NO_SCOPE_CLIENT)
    assert done.returncode != 0
    assert "invalid_scope" in done.stderr


def test_the_workflow_runs_the_smoke_script():
    workflow = (ROOT / ".github" / "workflows" / "deploy.yaml").read_text()
    assert "tools/deploy.sh" in workflow and "oauth/token" not in workflow
    assert "tools/smoke_test.sh" in (ROOT / "tools" / "deploy.sh").read_text()


def test_grpc_without_a_token_is_unauthenticated(door):
    channel, stub = grpc_stub(door.grpc_target)
    with channel:
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
