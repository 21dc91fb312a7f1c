"""Fixtures: a small Keras model of the contract's shape, the real predictor on it, a real issuer
(discovery + JWKS over HTTP) and the real proxy in front of the predictor."""

from __future__ import annotations

import os
from contextlib import ExitStack

import pytest

from support import in_process
from support.contract_model import build_contract_model
from support.issuer import Issuer, issuer_env
from support.oidc_provider import OidcProvider
from support.servers import start_predictor, start_proxy, wait_ready

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# tests/workflows/test_workflows.py runs the GitHub workflows under nektos/act (`make
# workflows`), and their test job runs this suite: collected only when that harness asks (it sets
# WORKFLOWS=1). The workflows' other tests read and run their files here, as any test.
collect_ignore = [] if os.environ.get("WORKFLOWS") == "1" else ["workflows/test_workflows.py"]


def _held_to_the_unit_rule(item: pytest.Item):
    """A `unit` test's setup, call and teardown run with child processes, sockets and name
    lookups refused (support/in_process.py); one refused, even if the code under test swallowed
    the error, fails the test."""
    if item.get_closest_marker("unit") is None:
        return (yield)
    with in_process.enforced():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    return (yield from _held_to_the_unit_rule(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    return (yield from _held_to_the_unit_rule(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item):
    return (yield from _held_to_the_unit_rule(item))


class _FixtureTeardowns:
    """A fixture's teardown is held to the unit rule exactly when its setup was, in whichever
    test's teardown its scope ends: a process test's fixture torn down after a unit test (the
    last of its module, or of the session) stops its server freely; a unit test's module
    fixture torn down after a process test is still held. A plugin, not this conftest's hook:
    pytest asks a conftest under tests/ nothing about a session fixture (its node, the session,
    lies above tests/)."""

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
        held = in_process.holding()
        teardown = ExitStack()
        request.addfinalizer(teardown.close)  # a fixture's finalizers run last in, first out
        result = yield
        request.addfinalizer(lambda: teardown.enter_context(in_process.held_as(held)))
        return result


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_FixtureTeardowns(), "unit-rule-fixture-teardowns")


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
def oidc_proxy(provider, predictor, tmp_path_factory):
    """The proxy in front of the real predictor, trusting the OIDC provider's tokens."""
    process = start_proxy(
        tmp_path_factory.mktemp("oidc-proxy"),
        **provider.proxy_settings(),
        upstream=predictor,
    )
    yield process
    process.stop()
