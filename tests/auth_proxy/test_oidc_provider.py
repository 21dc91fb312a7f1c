"""The proxy against a real, certified OpenID provider (panva's oidc-provider, tests/oidc):
tokens obtained the standard way (tools/oauth2_token.py: discovery, form-encoded client
credentials, `resource`), RS256 / ES256 / PS256, scope or none, opaque tokens, rotation by
restarting the provider with new keys, the provider down and back, an issuer that differs by
one slash, keys that cannot verify the allowed algorithm, and the deploy workflow's smoke test.
What no real provider does (a discovery document that sends the secret to another origin, an
access token that would split a header) is asked of small recording servers on loopback.
Tokens no real provider would issue (expired, forged, malformed) are the hand-made issuer's
job (test_rest_tokens.py, test_hostile_*.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
from support.ports import free_port
from support.servers import ROOT, start_proxy
from tools.oauth2_token import TokenError, get_token, main

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


def status(proxy, token_value: str, path: str = METADATA) -> int:
    headers = {"Authorization": f"Bearer {token_value}"}
    return httpx.get(proxy.url + path, headers=headers, timeout=30).status_code


@pytest.mark.parametrize("auth", ["basic", "post"])
def test_a_token_from_the_standard_grant_is_accepted_on_both_protocols(provider, oidc_proxy, auth):
    value = token(provider, auth=auth)
    header = json.loads(__import__("base64").urlsafe_b64decode(value.split(".")[0] + "=="))
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    answer = httpx.post(
        oidc_proxy.url + "/upload",
        files={"file": ("cat.png", CAT.read_bytes())},
        headers={"Authorization": f"Bearer {value}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    channel, stub = grpc_stub(oidc_proxy.grpc_target)
    with channel:
        metadata = stub.ModelMetadata(
            pb.ModelMetadataRequest(name=MODEL), metadata=[("authorization", f"Bearer {value}")]
        )
    assert metadata.name == MODEL


@pytest.mark.parametrize("auth", ["basic", "client_secret_post"])
def test_credentials_with_reserved_characters_are_encoded_right(provider, oidc_proxy, auth):
    assert status(oidc_proxy, token(provider, ODD_CLIENT, auth=auth)) == 200


def test_a_client_not_granted_the_scope_gets_a_token_and_a_403(provider, oidc_proxy):
    with pytest.raises(TokenError, match="invalid_scope"):
        token(provider, NO_SCOPE_CLIENT)  # asking for the scope it was not granted
    value = token(provider, NO_SCOPE_CLIENT, scope="")
    answer = httpx.get(oidc_proxy.url + METADATA, headers={"Authorization": f"Bearer {value}"})
    assert answer.status_code == 403
    assert SCOPE in answer.headers["www-authenticate"]


def test_an_opaque_token_without_a_resource_is_401(provider, oidc_proxy):
    endpoint = httpx.get(provider.url + "/.well-known/openid-configuration").json()
    answer = httpx.post(
        endpoint["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": SCOPE},
        auth=CLIENT,
    )
    opaque = answer.json()["access_token"]
    assert opaque.count(".") == 0  # not a JWT: the provider issues those for a resource only
    assert status(oidc_proxy, opaque) == 401


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


def run_smoke(proxy, provider, client) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OAUTH2_ISSUER": provider.url,
        "OAUTH2_AUDIENCE": AUDIENCE,
        "OAUTH2_CLIENT_ID": client[0],
        "OAUTH2_CLIENT_SECRET": client[1],
    }
    return subprocess.run(
        ["bash", str(ROOT / "tools" / "smoke_test.sh"), proxy.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_deploy_workflows_smoke_test_passes_against_the_provider(provider, oidc_proxy):
    done = run_smoke(oidc_proxy, provider, CLIENT)
    assert done.returncode == 0, done.stderr
    assert "smoke test passed" in done.stdout
    assert CLIENT[1] not in done.stdout + done.stderr


def test_the_smoke_test_fails_when_the_client_cannot_get_the_scope(provider, oidc_proxy):
    done = run_smoke(oidc_proxy, provider, NO_SCOPE_CLIENT)
    assert done.returncode != 0
    assert "invalid_scope" in done.stderr


def test_the_workflow_runs_the_smoke_script():
    workflow = (ROOT / ".github" / "workflows" / "deploy.yaml").read_text()
    assert "tools/deploy.sh" in workflow and "oauth/token" not in workflow
    assert "tools/smoke_test.sh" in (ROOT / "tools" / "deploy.sh").read_text()


def test_grpc_without_a_token_is_unauthenticated(oidc_proxy):
    channel, stub = grpc_stub(oidc_proxy.grpc_target)
    with channel:
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


class Recording(ThreadingHTTPServer):
    """An issuer on loopback that records every request: its discovery document names
    `token_endpoint`, and a POST to `/token` answers `access_token`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), RecordingHandler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.token_endpoint = self.url + "/token"
        self.access_token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
        self.requests: list[tuple[str, str, str]] = []  # method, path, Authorization + body
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class RecordingHandler(BaseHTTPRequestHandler):
    server: Recording

    def do_GET(self):
        self._record(b"")
        self._json({"issuer": self.server.url, "token_endpoint": self.server.token_endpoint})

    def do_POST(self):
        self._record(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self._json({"access_token": self.server.access_token, "token_type": "Bearer"})

    def _record(self, body: bytes) -> None:
        seen = f"{self.headers.get('Authorization', '')} {body.decode()}"
        self.server.requests.append((self.command, self.path, seen))

    def _json(self, document: dict) -> None:
        data = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def recording():
    """Two recording issuers: `recording[1]` plays the server on another origin."""
    made = [Recording(), Recording()]
    yield made
    for server in made:
        server.stop()


SECRET = "recorded-secret-do-not-send"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--audience", AUDIENCE, "--client-id", "c", "--client-secret", SECRET, *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("elsewhere", ["other port", "other host"])
def test_a_token_endpoint_on_another_origin_never_gets_the_secret(
    recording, elsewhere, capsys, monkeypatch
):
    issuer, other = recording
    issuer.token_endpoint = (
        other.url + "/token"
        if elsewhere == "other port"
        else issuer.url.replace("127.0.0.1", "localhost") + "/token"  # this server, by a name
    )
    with pytest.raises(TokenError, match="another origin than the issuer's") as refused:
        get_token(issuer.url, AUDIENCE, "c", SECRET)
    assert "--token-url or OAUTH2_TOKEN_URL" in str(refused.value)
    monkeypatch.delenv("OAUTH2_TOKEN_URL", raising=False)
    code, out, err = cli(capsys, "--issuer", issuer.url)
    assert code == 1 and out == "" and err.count("\n") == 1 and "another origin" in err
    assert other.requests == []
    assert [method for method, _, _ in issuer.requests] == ["GET", "GET"]  # discovery only
    assert SECRET not in err


def test_a_token_endpoint_on_the_issuers_origin_gets_the_grant(recording):
    issuer, _ = recording
    issuer.token_endpoint = issuer.url.replace("http:", "HTTP:") + "/token"  # same origin
    assert get_token(issuer.url + "/", AUDIENCE, "c", SECRET) == issuer.access_token
    assert [method for method, _, _ in issuer.requests] == ["GET", "POST"]


def test_a_token_endpoint_named_by_the_user_is_used_without_discovery(
    recording, capsys, monkeypatch
):
    issuer, other = recording
    issuer.token_endpoint = other.url + "/token"  # what discovery would name: refused there
    value = get_token(issuer.url, AUDIENCE, "c", SECRET, token_url=other.url + "/token")
    assert value == other.access_token and issuer.requests == []
    assert [(method, path) for method, path, _ in other.requests] == [("POST", "/token")]
    monkeypatch.setenv("OAUTH2_TOKEN_URL", other.url + "/token")  # no issuer needed then
    monkeypatch.delenv("OAUTH2_ISSUER", raising=False)
    code, out, err = cli(capsys, "--auth", "post")
    assert (code, out, err) == (0, other.access_token + "\n", "")
    assert SECRET in other.requests[-1][2] and issuer.requests == []


@pytest.mark.parametrize(
    "access_token",
    [
        "abc\r\nX-Injected: yes",
        "abc\n",
        "abc def",
        "abc\tdef",
        "ab\u00e9c",
        "abc=def",
        "=abc",
        "",
        "a;b",
        'a"b',
    ],
)
def test_an_access_token_that_is_not_one_header_safe_line_is_not_printed(
    recording, access_token, capsys, monkeypatch
):
    issuer, _ = recording
    issuer.access_token = access_token
    with pytest.raises(TokenError, match="not one header-safe line"):
        get_token(issuer.url, AUDIENCE, "c", SECRET)
    monkeypatch.delenv("OAUTH2_TOKEN_URL", raising=False)
    code, out, err = cli(capsys, "--issuer", issuer.url)
    assert code == 1 and out == "" and "header-safe" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "access_token",
    [
        "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_",
        "abc==",
        "a-b_c~d+e/f.g",
        "2YotnFZFEjr1zCsicMWpAA",
    ],
)
def test_a_b64token_is_printed_as_it_came(recording, access_token, capsys, monkeypatch):
    issuer, _ = recording
    issuer.access_token = access_token
    monkeypatch.delenv("OAUTH2_TOKEN_URL", raising=False)
    assert cli(capsys, "--issuer", issuer.url) == (0, access_token + "\n", "")
