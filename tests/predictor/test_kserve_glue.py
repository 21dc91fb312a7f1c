"""The KServe canary: every name `predictor/kserve_glue.py` relies on (private attributes,
overridden methods, the constructors and methods it calls) still exists in the installed kserve,
and every callable still takes the parameters it is called with, by name (or, overridden, is
still called with the parameters our override takes). A KServe upgrade that removes or renames
one fails here, by name, instead of breaking the server at run time."""

from __future__ import annotations

import inspect
from importlib.metadata import version
from types import SimpleNamespace

import pytest
from kserve.errors import InvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from predictor.kserve_glue import (
    APP,
    RELIED_ON,
    SERVICE,
    GrpcServer,
    Relied,
    RestServer,
    add_servers,
    grpc_server,
    rest_server,
    validate_grpc_request,
)
from predictor.protocol.dataplane import PredictorDataPlane
from predictor.protocol.grpc_service import PredictorServicer, StatusInterceptor

pytestmark = pytest.mark.unit

KSERVE = f"kserve {version('kserve')}"
CALLABLES = [relied for relied in RELIED_ON if relied.parameters is not None]


def where(relied: Relied) -> str:
    return f"{KSERVE}: {relied.owner.__module__}.{relied}"


@pytest.mark.parametrize("relied", RELIED_ON, ids=str)
def test_kserve_still_has(relied):
    owner, name = relied.owner, relied.name
    found = hasattr(owner, name) or f"self.{name} =" in inspect.getsource(owner.__init__)
    assert found, f"{where(relied)} is gone; predictor/kserve_glue.py relies on it"


def _parameters(relied: Relied) -> list[inspect.Parameter]:
    """The callable's parameters as a call passes them: `self` left out of a method's."""
    target = getattr(relied.owner, relied.name)
    parameters = list(inspect.signature(target).parameters.values())
    if inspect.isfunction(target) and parameters and parameters[0].name == "self":
        parameters = parameters[1:]  # a plain method, read off the class
    return parameters


def refusal(relied: Relied) -> str:
    """Why the installed kserve no longer takes what `relied` records; "" if it does. A call:
    its keywords must still bind (none renamed or gone, no new required parameter). An
    overridden method: KServe must still call it with exactly the parameters recorded, which
    our override takes."""
    parameters = _parameters(relied)
    recorded = list(relied.parameters or ())
    if relied.overridden:
        names = [parameter.name for parameter in parameters]
        return "" if names == recorded else f"now takes {names}; our override takes {recorded}"
    signature = inspect.Signature(parameters)
    try:
        signature.bind(**dict.fromkeys(recorded))
    except TypeError as exc:
        return f"{signature} no longer takes {recorded} by keyword: {exc}"
    return ""


@pytest.mark.parametrize("relied", CALLABLES, ids=str)
def test_kserve_still_takes_what_we_pass(relied):
    why = refusal(relied)
    assert not why, f"{where(relied)} {why}; predictor/kserve_glue.py relies on it"


OURS = (GrpcServer, PredictorDataPlane, PredictorServicer, RestServer, StatusInterceptor)
OVERRIDES = [
    (ours, relied)
    for ours in OURS
    for relied in CALLABLES
    if issubclass(ours, relied.owner)
    and relied.name in vars(ours)
    # RestServer and GrpcServer are built with their own arguments and pass KServe's on
    and not (relied.name == "__init__" and ours in (RestServer, GrpcServer))
]


@pytest.mark.parametrize(
    ("ours", "relied"), OVERRIDES, ids=[f"{ours.__name__}.{r.name}" for ours, r in OVERRIDES]
)
def test_our_overrides_take_what_they_are_called_with(ours, relied):
    """Our version of a relied-on method takes what it is called with: by name, as
    kserve_glue calls, and, where KServe calls it, in KServe's order too."""
    override = inspect.signature(vars(ours)[relied.name])
    override.bind(None, **dict.fromkeys(relied.parameters))  # self, then by name
    if relied.overridden:
        override.bind(None, *relied.parameters)  # self, then in KServe's order


def test_the_canary_sees_a_renamed_or_missing_parameter():
    init = next(relied for relied in RELIED_ON if str(relied) == "ModelServer.__init__")
    assert refusal(init) == ""
    assert "no longer takes" in refusal(Relied(init.owner, init.name, ("http_prt",)))
    decode = next(relied for relied in RELIED_ON if str(relied) == "DataPlane.decode")
    assert "now takes" in refusal(Relied(decode.owner, decode.name, ("body",), overridden=True))


def test_a_call_that_passes_other_keywords_than_recorded_fails_at_once():
    relied = RELIED_ON[0]
    assert relied.keywords(http_port=1, grpc_port=2, enable_grpc=False) == {
        "http_port": 1,
        "grpc_port": 2,
        "enable_grpc": False,
    }
    with pytest.raises(TypeError, match="kserve_glue records"):
        relied.keywords(http_port=1, grpc_port=2)


def test_every_method_of_the_v2_service_is_relied_on():
    relied = {entry.name for entry in RELIED_ON if entry.owner.__name__ == "InferenceServicer"}
    assert {method.name for method in SERVICE.methods} <= relied


def test_kserves_grpc_request_checks_still_refuse_raw_contents_that_do_not_match():
    request = pb.ModelInferRequest(model_name="m", raw_input_contents=[b"a", b"b"])
    request.inputs.add(name="image", datatype="BYTES", shape=[1])
    with pytest.raises(InvalidInput, match="does not match"):
        validate_grpc_request(request)
    del request.raw_input_contents[1]
    validate_grpc_request(request)


def test_the_servers_are_built_from_the_model_servers_settings_by_keyword():
    """What `PredictorServer.start` builds, without starting it: each constructor takes the
    keywords recorded (`Relied.keywords` refuses any other set)."""
    dataplane = PredictorDataPlane(model_registry=ModelRepository())
    server = SimpleNamespace(
        dataplane=dataplane,
        model_repository_extension=None,
        http_port=18080,
        grpc_port=18081,
        access_log_format=None,
        grace_period=7,
        event_loop="asyncio",
        timeout_keep_alive=11,
        max_threads=3,
        servers=[],
    )
    rest = rest_server(server, host="127.0.0.1", install=print, finish=print)
    config = rest.config
    assert (config.host, config.port, config.timeout_keep_alive) == ("127.0.0.1", 18080, 11)
    assert config.forwarded_allow_ips == ["127.0.0.1", "::1"] and rest.dataplane is dataplane
    grpc = grpc_server(
        server, host="::1", servicer=PredictorServicer, interceptors=(), max_message_bytes=99
    )
    assert (grpc._port, grpc._data_plane, grpc._grace_period) == (18081, dataplane, 7)
    add_servers(server, rest=rest, grpc=grpc)
    assert (server._rest_server, server._grpc_server) == (rest, grpc)
    assert len(server.servers) == 2
    for coroutine in server.servers:
        coroutine.close()  # built, never started


def test_kserve_still_has_its_app():
    module, _, attribute = APP.partition(":")
    assert hasattr(__import__(module, fromlist=[attribute]), attribute)
