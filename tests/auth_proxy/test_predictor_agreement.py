"""What the proxy's image and the predictor's image must agree on, read from both packages: the
images are built apart, and only this test ties them. What passes the proxy without a token is
what the predictor's OpenAPI document marks as needing none, and the documentation pages and
files it serves; the scope the proxy requires is the one the document asks for; the paths the
proxy closes are those the document leaves out; a refusal has the shape the document shows."""

from __future__ import annotations

import json

import pytest

from auth_proxy import public_paths, refusals, settings
from auth_proxy.public_paths import CLOSED_PREFIXES
from predictor.contract import MODEL_NAME
from predictor.rest import docs, openapi

pytestmark = pytest.mark.unit

BASE = {"OAUTH2_ISSUER": "https://tenant.eu.auth0.com/", "OAUTH2_AUDIENCE": "https://api"}


def test_the_public_paths_are_the_operations_the_document_marks_public():
    paths = {path.replace("{model_name}", MODEL_NAME) for path in openapi.PUBLIC_OPERATIONS}
    assert not [path for path in paths if "{" in path], "a template the proxy cannot fill"
    assert paths == set(public_paths.DEFAULT_PUBLIC_PATHS)


def test_the_public_docs_are_the_pages_and_files_the_predictor_serves():
    assert tuple(docs.ASSETS) == public_paths.DOCS_ASSETS
    assert frozenset(docs.PUBLIC_PATHS) == public_paths.DOCS_PATHS


def test_the_scope_required_is_the_one_the_document_asks_for():
    assert settings.load_settings(BASE).rules.scope == openapi.SCOPE


def test_what_the_proxy_closes_the_document_leaves_out():
    assert openapi.REPOSITORY_PREFIX in CLOSED_PREFIXES
    assert [prefix for prefix in CLOSED_PREFIXES if not openapi.uncallable(prefix)] == []


def example(status: str) -> dict:
    return openapi.REFUSALS[status]["content"]["application/json"]["example"]


def sent(refusal: refusals.Refusal) -> dict:
    return json.loads(refusals.rest_response(refusal, "realm").body)


def test_a_refusal_has_the_shape_the_document_shows():
    schema = openapi.ERROR_SCHEMAS["Refusal"]
    fullest = sent(refusals.insufficient_scope("the token lacks the scope s", openapi.SCOPE))
    assert set(fullest) == set(schema["properties"])
    assert set(schema["required"]) <= set(sent(refusals.no_token()))
    assert sent(refusals.no_token()) == example("401")
    scoped = example("403")
    assert (fullest["error"], fullest["scope"]) == (scoped["error"], scoped["scope"])
