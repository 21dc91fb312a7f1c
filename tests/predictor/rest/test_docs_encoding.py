"""The public documentation files and the OpenAPI document in their two forms: gzip for a client
that accepts it (`gzip;q=0` does not), each form with its own ETag and `Vary: Accept-Encoding`
once, a 304 only for the ETag of the form the client would get; the document serialized and
compressed once. And the token URL: an internationalised host in its ASCII (IDNA) form, so that
`/docs` still answers. In process: the predictor's routes on a FastAPI app behind Starlette's GZip
middleware as `PredictorServer` adds it (before the routes, so the docs' negotiation is outside
it); the body-limit middlewares play no part in a GET."""

from __future__ import annotations

import gzip
import json
import re

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from kserve.model_repository import ModelRepository
from starlette.middleware.gzip import GZipMiddleware

from predictor.protocol.dataplane import PredictorDataPlane
from predictor.rest import docs
from predictor.rest.routes import install_routes
from predictor.server import GZIP_MINIMUM_BYTES
from predictor.setting_types import web_url
from predictor.settings import parse_settings

pytestmark = pytest.mark.unit

ASSET = docs.ASSET_PREFIX + "swagger-ui-bundle.js"
PLAIN = (docs.asset_folder() / "swagger-ui-bundle.js").read_bytes()
IDN_TOKEN_URL = "https://bücher.example/oauth/token"
IDN_ORIGIN = "https://xn--bcher-kva.example"


def predictor_app(**env: str) -> FastAPI:
    """The predictor's routes (its settings from `env`) behind the GZip middleware, installed
    in the server's order; KServe's own routes left out."""
    settings = parse_settings([], env)
    app = FastAPI(docs_url=None, redoc_url=None)  # as KServe makes its app
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=6)
    dataplane = PredictorDataPlane(model_registry=ModelRepository())
    install_routes(app, dataplane, settings.oauth2_token_url)
    return app


@pytest.fixture(scope="module")
def client():
    with TestClient(predictor_app()) as made:
        yield made


def fetch(client, path: str, encoding: str, **headers: str) -> tuple[int, dict, bytes]:
    """Status, headers and the bytes as sent (not decoded)."""
    with client.stream("GET", path, headers={"Accept-Encoding": encoding, **headers}) as answer:
        return answer.status_code, answer.headers, b"".join(answer.iter_raw())


@pytest.mark.parametrize(
    ("header", "gzip_ok"),
    [
        ("gzip", True),
        ("gzip, deflate, br, zstd", True),
        ("GZIP;Q=0.5", True),
        ("x-gzip", True),
        ("*", True),
        ("br, *;q=0.1", True),
        ("x-gzip;q=0, gzip", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("deflate, gzip;q=0", False),
        ("gzip;q=0, *", False),  # named: the wildcard does not cover it
        ("*;q=0", False),
        ("gzip;q=abc", False),
        ("gzip;q=2", False),
        ("gzip;q=nan", False),
        ("identity", False),
        ("br, deflate", False),
        ("", False),
    ],
)
def test_accept_encoding_is_parsed_with_its_weights(header, gzip_ok):
    assert docs.accepts_gzip(header) is gzip_ok


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ("*", True),
        ('"abc-gzip"', False),
        ('"x"', False),
        ("", False),
    ],
)
def test_if_none_match_compares_entity_tags_weakly(header, matches):
    assert docs.etag_matches(header, '"abc"') is matches


def test_vary_names_are_merged_once():
    merged = docs.one_vary(["Accept-Encoding", "accept-encoding, Origin"])
    assert merged == "Accept-Encoding, Origin"


def test_an_asset_comes_in_two_forms_each_with_its_own_etag(client):
    status, plain_headers, body = fetch(client, ASSET, "identity")
    assert status == 200 and body == PLAIN and "content-encoding" not in plain_headers
    status, packed_headers, packed = fetch(client, ASSET, "gzip, deflate")
    assert status == 200 and packed_headers["content-encoding"] == "gzip"
    assert packed == gzip.compress(PLAIN, compresslevel=9, mtime=0)  # the copy made at start-up
    plain_tag, packed_tag = plain_headers["etag"], packed_headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', plain_tag) and packed_tag == plain_tag[:-1] + '-gzip"'
    for headers in (plain_headers, packed_headers):
        assert headers["vary"] == "Accept-Encoding"  # once, on both forms


def test_gzip_refused_with_a_zero_weight_gets_the_plain_bytes(client):
    status, headers, body = fetch(client, ASSET, "gzip;q=0, identity")
    assert status == 200 and body == PLAIN  # not gzipped here, nor by the GZip middleware
    assert "content-encoding" not in headers and not headers["etag"].endswith('-gzip"')
    assert headers["vary"] == "Accept-Encoding"


def test_a_304_answers_only_the_etag_of_the_form_the_client_gets(client):
    _, plain, _ = fetch(client, ASSET, "identity")
    _, packed, _ = fetch(client, ASSET, "gzip")
    for encoding, etag, expected in [
        ("identity", plain["etag"], 304),
        ("gzip", packed["etag"], 304),
        ("gzip", "W/" + packed["etag"], 304),
        ("gzip", f'"other", {packed["etag"]}', 304),
        ("gzip", "*", 304),
        ("gzip", plain["etag"], 200),  # the plain form's tag does not validate the gzip one
        ("identity", packed["etag"], 200),
        ("gzip;q=0", packed["etag"], 200),
    ]:
        status, headers, body = fetch(client, ASSET, encoding, **{"If-None-Match": etag})
        assert status == expected, (encoding, etag)
        gzipped = encoding == "gzip"
        assert headers["etag"] == (packed if gzipped else plain)["etag"]
        assert headers["vary"] == "Accept-Encoding"
        if status == 304:
            assert body == b""
        else:
            assert body == (gzip.compress(PLAIN, 9, mtime=0) if gzipped else PLAIN)


def test_head_says_the_length_of_the_form_it_would_send(client):
    head = client.head(ASSET, headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.headers["content-length"] == str(len(PLAIN))
    head = client.head(ASSET, headers={"Accept-Encoding": "gzip"})
    packed = gzip.compress(PLAIN, compresslevel=9, mtime=0)
    assert head.headers["content-length"] == str(len(packed))


def test_the_openapi_document_is_built_once_and_served_like_the_assets():
    app = predictor_app()
    built = []
    describe = app.openapi  # rest/routes.py's hook: FastAPI's document, described
    app.openapi = lambda: built.append(1) or describe()  # type: ignore[method-assign]
    openapi_routes = [r for r in app.router.routes if getattr(r, "path", "") == docs.OPENAPI_URL]
    assert len(openapi_routes) == 1  # FastAPI's own per-request route is gone
    with TestClient(app) as client:
        status, plain_headers, plain = fetch(client, docs.OPENAPI_URL, "identity")
        assert status == 200 and plain_headers["content-type"] == "application/json"
        # The same bytes FastAPI's route sent: its JSONResponse rendering of the document.
        assert plain == JSONResponse(describe()).body
        assert json.loads(plain)["info"]["title"] == "cats-dogs-other classifier"
        for _ in range(3):
            status, headers, packed = fetch(client, docs.OPENAPI_URL, "gzip")
            assert status == 200 and headers["content-encoding"] == "gzip"
            assert packed == gzip.compress(plain, compresslevel=9, mtime=0)  # not recompressed
            assert headers["etag"] == plain_headers["etag"][:-1] + '-gzip"'
            assert headers["vary"] == plain_headers["vary"] == "Accept-Encoding"
        status, _, refused = fetch(client, docs.OPENAPI_URL, "gzip;q=0")
        assert refused == plain
        revalidated = fetch(client, docs.OPENAPI_URL, "gzip", **{"If-None-Match": headers["etag"]})
        assert revalidated[0] == 304
        stale = fetch(client, docs.OPENAPI_URL, "gzip", **{"If-None-Match": plain_headers["etag"]})
        assert stale[0] == 200
    assert built == [1]


def test_an_internationalised_token_url_serves_the_docs_with_its_ascii_origin():
    with TestClient(predictor_app(OAUTH2_TOKEN_URL=IDN_TOKEN_URL)) as client:
        page = client.get(docs.DOCS_URL)
        assert page.status_code == 200 and "swagger-ui" in page.text
        assert f"connect-src 'self' {IDN_ORIGIN};" in page.headers["content-security-policy"]
        document = client.get(docs.OPENAPI_URL).json()
    flow = document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == IDN_ORIGIN + "/oauth/token"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (IDN_TOKEN_URL, IDN_ORIGIN + "/oauth/token"),
        ("https://BÜCHER.example:8443/t?x=1", IDN_ORIGIN + ":8443/t?x=1"),
        ("https://faß.de/token", "https://xn--fa-hia.de/token"),  # as browsers write it
        ("https://\uff49\uff44\uff50.example/t", "https://idp.example/t"),  # full-width idp
        ("https://xn--bcher-kva.example/t", "https://xn--bcher-kva.example/t"),
        ("https://idp.example/t%C3%A9", "https://idp.example/t%C3%A9"),
    ],
)
def test_a_token_url_comes_back_in_ascii(text, expected):
    assert web_url(text) == expected and expected.isascii()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("https://☃.example/t", "not a valid internationalised domain name"),
        ("https://bad-.bücher.example/t", "not a valid internationalised domain name"),
        ("https://idp.example/tö", "non-ASCII character 'ö' outside its host: percent-encode"),
        ("https://idp.example/\u200bt", "non-ASCII character U+200B outside its host"),
        ("https://idp.example/t\x00x", "a character a URL cannot (U+0000)"),
        ("https://idp.example/t\x1bx", "a character a URL cannot (U+001B)"),
        ("https://idp.example/t\x85x", "a character a URL cannot (U+0085)"),
        ("https://idp.example/t\x7f", "a character a URL cannot (U+007F)"),
        ("https://b%C3%BCcher.example/t", "a character a host name cannot"),
    ],
)
def test_a_token_url_that_cannot_be_ascii_is_refused_in_words(text, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        web_url(text)


def test_the_predictor_refuses_an_impossible_host_at_start(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_settings([], {"OAUTH2_TOKEN_URL": "https://☃.example/oauth/token"})
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "OAUTH2_TOKEN_URL" in error and "internationalised domain name" in error
