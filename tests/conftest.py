"""Fixtures: a small Keras model of the contract's shape, the real predictor on it, a real issuer
(discovery + JWKS over HTTP) and the real proxy in front of the predictor."""

from __future__ import annotations

import os

import pytest

from support.contract_model import build_contract_model
from support.issuer import Issuer, issuer_env
from support.oidc_provider import OidcProvider
from support.servers import start_predictor, start_proxy, wait_ready

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# tests/workflows runs the GitHub workflows under nektos/act (`make workflows`), and their test
# job runs this suite: collected only when that harness asks (it sets WORKFLOWS=1).
collect_ignore = [] if os.environ.get("WORKFLOWS") == "1" else ["workflows"]


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "final_model.keras"
    build_contract_model(path)
    return path


@pytest.fixture(scope="session")
def keras_model(model_file):
    """The same model, loaded in the test process the way the course's app loads it."""
    import keras

    return keras.models.load_model(model_file)


@pytest.fixture(scope="session")
def predictor(model_file, tmp_path_factory):
    # A fixed batch limit: the batching tests need calls of more than one image, which the
    # measured limit (test_default_model) may not allow for this tiny model.
    process = start_predictor(model_file, tmp_path_factory.mktemp("logs"), MAX_BATCH_SIZE="8")
    try:
        yield wait_ready(process)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def issuer():
    server = Issuer()
    yield server
    server.down()


@pytest.fixture(scope="module")
def proxy(issuer, predictor, tmp_path_factory):
    """The proxy in front of the real predictor; keys found by OIDC discovery."""
    process = start_proxy(
        tmp_path_factory.mktemp("proxy"),
        **issuer_env(issuer),
        upstream=predictor,
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    """A real OIDC provider (panva's oidc-provider): client-credentials tokens, discovery."""
    made = OidcProvider(tmp_path_factory.mktemp("oidc"))
    yield made
    made.stop()


@pytest.fixture(scope="module")
def door(provider, predictor, tmp_path_factory):
    """The proxy in front of the real predictor, trusting the OIDC provider's tokens."""
    process = start_proxy(
        tmp_path_factory.mktemp("door"),
        **provider.proxy_settings(),
        upstream=predictor,
    )
    yield process
    process.stop()
