"""The documentation pages' pure parts: the proxy's public docs paths are exactly the predictor's
pages and files, each with a metrics template; PUBLIC_DOCS is read by name; each page's policy
allows its own inline script by hash and nothing from elsewhere; the OpenAPI document declares
on every operation how to authorize it (the bearer scheme, OAuth2 client credentials with a token
URL; nothing on the public probes), drops what no one can call, and has examples."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from auth_proxy.public_paths import DOCS_PATHS
from auth_proxy.route_labels import OTHER, rest_route
from auth_proxy.settings import SettingsError, load_settings
from predictor.rest import docs, openapi

pytestmark = pytest.mark.unit

BASE = {"OAUTH2_ISSUER": "https://tenant.eu.auth0.com/", "OAUTH2_AUDIENCE": "https://api"}


def test_the_proxys_public_docs_are_the_predictors_pages_and_files():
    assert frozenset(docs.PUBLIC_PATHS) == DOCS_PATHS
    for name in docs.ASSETS:
        assert (docs.asset_folder() / name).stat().st_size > 1000, name


@pytest.mark.parametrize("path", sorted(DOCS_PATHS))
def test_every_public_docs_path_has_a_metrics_template(path):
    assert rest_route(path).protocol == "docs"


@pytest.mark.parametrize("path", ["/docs/assets/x.js", "/docs/assets/", "/docs/assets/a/b"])
def test_other_asset_paths_stay_other(path):
    assert rest_route(path) == OTHER


@pytest.mark.parametrize(
    ("value", "expected"), [("", True), ("true", True), ("off", False), ("0", False)]
)
def test_public_docs_is_on_unless_turned_off(value, expected):
    assert load_settings({**BASE, "PUBLIC_DOCS": value}).public_docs is expected


def test_a_bad_public_docs_value_is_refused_by_name():
    with pytest.raises(SettingsError, match="PUBLIC_DOCS must be true or false, got 'maybe'"):
        load_settings({**BASE, "PUBLIC_DOCS": "maybe"})


def inline_scripts(html: str) -> list[str]:
    return re.findall(r"<script>(.*?)</script>", html, re.DOTALL)


def test_the_swagger_page_allows_its_inline_script_by_hash_only():
    page = docs.swagger_page().response()
    policy = page.headers["content-security-policy"]
    (script,) = inline_scripts(page.body.decode())
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}';" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert "https://" not in page.body.decode() and "https:" not in policy
    assert "validatorUrl" in page.body.decode()  # the online validator is not called


def test_the_redoc_page_loads_only_local_files():
    page = docs.redoc_page().response()
    html = page.body.decode()
    assert "fonts.googleapis" not in html and "https://" not in html
    assert 'src="/docs/assets/redoc.standalone.js"' in html
    assert "worker-src blob:" in page.headers["content-security-policy"]


def test_a_token_url_opens_the_policy_to_its_origin_only():
    page = docs.swagger_page("https://tenant.eu.auth0.com/oauth/token")
    policy = page.response().headers["content-security-policy"]
    assert "connect-src 'self' https://tenant.eu.auth0.com;" in policy


def generated() -> dict:
    """What FastAPI and KServe give, in miniature: guarded, public and uncallable routes."""
    operation = {"responses": {"200": {"description": "OK"}}}
    return {
        "info": {"title": "KServe ModelServer", "version": "0.21.0"},
        "paths": {
            "/upload": {"post": dict(operation)},
            "/health": {"get": dict(operation)},
            "/v2/health/live": {"get": dict(operation)},
            "/v2/health/ready": {"get": dict(operation)},
            "/v2": {"get": dict(operation)},
            "/v2/models/{model_name}": {"get": dict(operation)},
            "/v2/models/{model_name}/infer": {"post": dict(operation)},
            "/v2/models/{model_name}/ready": {"get": dict(operation)},
            "/v1/models/{model_name}:explain": {"post": dict(operation)},
            "/v2/repository/models/{model_name}/unload": {"post": dict(operation)},
            "/metrics": {"get": dict(operation)},
        },
    }


# What a user must send to each operation: the proxy guards all but its public probes.
GUARDED = {
    ("/upload", "post"),
    ("/v2", "get"),
    ("/v2/models/{model_name}", "get"),
    ("/v2/models/{model_name}/infer", "post"),
}
PUBLIC = {
    ("/health", "get"),
    ("/v2/health/live", "get"),
    ("/v2/health/ready", "get"),
    ("/v2/models/{model_name}/ready", "get"),
}
TOKEN_URL = "https://idp.example/oauth/token"


@pytest.mark.parametrize("token_url", ["", TOKEN_URL], ids=["bearer", "with-token-url"])
def test_the_document_says_how_to_authorize_each_operation(token_url):
    document = openapi.describe(generated(), token_url)
    schemes = document["components"]["securitySchemes"]
    bearer = schemes["bearer"]
    assert (bearer["type"], bearer["scheme"], bearer["bearerFormat"]) == ("http", "bearer", "JWT")
    assert "`get::prediction`" in bearer["description"]
    if token_url:
        assert schemes["oauth2"]["type"] == "oauth2"
        (flow,) = schemes["oauth2"]["flows"].values()
        assert schemes["oauth2"]["flows"] == {"clientCredentials": flow}
        assert flow["tokenUrl"] == TOKEN_URL and list(flow["scopes"]) == ["get::prediction"]
        required = [{"bearer": []}, {"oauth2": ["get::prediction"]}]
    else:
        assert list(schemes) == ["bearer"]
        required = [{"bearer": []}]
    operations = {
        (path, method): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    assert set(operations) == GUARDED | PUBLIC
    for key in sorted(GUARDED):
        assert operations[key]["security"] == required, key
        assert {"401", "403"} <= set(operations[key]["responses"]), key
    for key in sorted(PUBLIC):
        assert operations[key]["security"] == [], key
        assert not {"401", "403"} & set(operations[key]["responses"]), key
    assert "security" not in document  # no default: each operation says its own
    info = document["info"]["description"]
    assert "**Authorize**" in info and "`get::prediction`" in info


def test_the_documents_public_operations_and_scope_are_the_proxys_defaults():
    """What the document says is what the proxy in front does with its defaults."""
    proxy = load_settings(BASE)
    assert {path.replace("{model_name}", "cats-dogs-other") for path, _ in PUBLIC} == set(
        proxy.public_paths
    )
    assert proxy.rules.scope == "get::prediction"


def test_the_document_drops_what_no_user_can_call():
    paths = openapi.describe(generated())["paths"]
    assert "/v1/models/{model_name}:explain" not in paths and "/metrics" not in paths
    assert not [path for path in paths if path.startswith("/v2/repository")]


def test_the_document_has_examples_for_upload_and_v2_infer():
    paths = openapi.describe(generated())["paths"]
    upload = paths["/upload"]["post"]["responses"]["200"]["content"]["application/json"]
    assert upload["example"]["prediction"] == "Cat"
    infer = paths["/v2/models/{model_name}/infer"]["post"]
    example = infer["requestBody"]["content"]["application/json"]["example"]
    assert example["inputs"][0]["name"] == "image"
    base64.b64decode(example["inputs"][0]["data"][0], validate=True)
    refusal = paths["/upload"]["post"]["responses"]["401"]["content"]["application/json"]
    assert refusal["schema"] == {"$ref": "#/components/schemas/Refusal"}


def test_a_token_url_adds_oauth2_client_credentials():
    document = openapi.describe(generated(), "https://idp.example/oauth/token")
    flow = document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "https://idp.example/oauth/token"
    assert document["paths"]["/upload"]["post"]["security"] == [
        {"bearer": []},
        {"oauth2": ["get::prediction"]},
    ]


def test_the_predictor_reads_its_token_url_by_name(capsys):
    from predictor.settings import parse_settings

    url = "https://tenant.eu.auth0.com/oauth/token"
    assert parse_settings([], {"OAUTH2_TOKEN_URL": url}).oauth2_token_url == url
    assert parse_settings([], {}).oauth2_token_url == ""
    with pytest.raises(SystemExit) as exit_:
        parse_settings([], {"OAUTH2_TOKEN_URL": "tenant/oauth/token"})
    assert exit_.value.code == 2
    assert "OAUTH2_TOKEN_URL" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("https://idp */t", "a character a URL cannot"),
        ("https://idp;script-src *", "a character a URL cannot"),
        ("https://user:secret@idp.example/t", "credentials"),
        ("http://idp.example/oauth/token", "must be https"),
        ("https://idp.example:port/t", "Port could not be cast"),
        ("ftp://idp.example/t", "not an http(s) URL"),
        ("https:///t", "not an http(s) URL"),
    ],
)
def test_a_token_url_that_could_widen_the_policy_or_leak_is_refused(text, why):
    from predictor.setting_types import web_url

    with pytest.raises(ValueError, match=re.escape(why)):
        web_url(text)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://tenant.eu.auth0.com/oauth/token", "https://tenant.eu.auth0.com"),
        ("https://KC.example:8443/realms/x/token", "https://kc.example:8443"),
        ("http://127.0.0.1:3000/token", "http://127.0.0.1:3000"),
        ("http://[::1]:3000/token", "http://[::1]:3000"),
    ],
)
def test_the_policy_names_the_token_urls_origin_rebuilt_from_its_parts(url, origin):
    from predictor.setting_types import web_url

    assert docs.origin_of(web_url(url)) == origin


def test_each_request_gets_its_own_page_response():
    page = docs.swagger_page()
    first, second = page.response(), page.response()
    first.headers["content-encoding"] = "gzip"  # what a middleware may do in place
    assert "content-encoding" not in second.headers
    assert "content-encoding" not in page.response().headers
