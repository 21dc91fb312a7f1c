"""The KServe canary: every name `predictor/kserve_glue.py` relies on (private attributes,
overridden methods, the constructors and methods it calls) still exists in the installed kserve,
and every callable still takes the parameters it is called with, by name (or, overridden, is
still called with the parameters our override takes). A KServe upgrade that removes or renames
one fails here, by name, instead of breaking the server at run time."""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version
from types import ModuleType, SimpleNamespace

import pytest
from kserve.errors import InvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from predictor import kserve_glue
from predictor.kserve_glue import (
    APP,
    PER_REQUEST,
    RELIED_ON,
    SERVICE,
    SERVICE_METHODS,
    GrpcServer,
    Relied,
    RestServer,
    add_servers,
    grpc_server,
    parsing_handlers,
    rest_server,
    validate_grpc_request,
)
from predictor.protocol.dataplane import PredictorDataPlane
from predictor.protocol.grpc_service import PredictorServicer, StatusInterceptor

pytestmark = pytest.mark.unit

KSERVE = f"kserve {version('kserve')}"
CALLABLES = [relied for relied in RELIED_ON if relied.parameters is not None]


def where(relied: Relied) -> str:
    if isinstance(relied.owner, ModuleType):
        return f"{KSERVE}: {relied}"  # the module's own name first
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
    if isinstance(relied.owner, type)
    and issubclass(ours, relied.owner)
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


class KServeStandIn:
    """Stands in for KServe where the glue calls `relied`: as the object the method is called
    on (any method of it), or, patched in, as the class's or the module's callable itself. Each
    call is recorded (the name called, its positional arguments, its keywords) and answered with
    `answer`, awaitable where KServe's is a coroutine."""

    def __init__(self, relied: Relied, answer: object):
        self.relied, self.answer = relied, answer
        self.awaited = inspect.iscoroutinefunction(getattr(relied.owner, relied.name))
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self.call(name, *args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self.call(self.relied.name, *args, **kwargs)

    def call(self, name: str, /, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        if self.awaited:
            return self._later()
        return self.answer

    async def _later(self):
        return self.answer


async def handled(servicer, method: str):
    """The gRPC method's handler, as `parsing_handlers` builds it, called with an empty
    message: it parses the request, then calls the servicer's method."""
    details = SimpleNamespace(method=f"/{SERVICE.full_name}/{method}")
    return await parsing_handlers(servicer).service(details).unary_unary(b"", None)


MESSAGE = pb.ModelInferRequest(model_name="m")
# Each call the glue makes per request, by the name of what it calls: how to make it, given the
# stand-in (the data plane, the registry or the servicer it is called on), and KServe's answer.
CALLS_PER_REQUEST = {
    "InferenceServicer.validate_grpc_request": (
        lambda kserve: kserve_glue.validate_grpc_request(MESSAGE),
        None,
    ),
    "DataPlane.model_ready": (
        lambda kserve: kserve_glue.model_ready(kserve, "m", disable_predictor_health_check=True),
        True,
    ),
    "DataPlane.infer": (lambda kserve: kserve_glue.infer(kserve, "m", "request", {}), ("a", {})),
    "DataPlane.get_model_from_registry": (
        lambda kserve: kserve_glue.model_from_registry(kserve, "m"),
        "model",
    ),
    "ModelRepository.get_models": (
        lambda kserve: kserve_glue.registered_models(SimpleNamespace(model_registry=kserve)),
        {},
    ),
    "ModelRepository.is_model_ready": (
        lambda kserve: kserve_glue.is_model_ready(SimpleNamespace(model_registry=kserve), "m"),
        True,
    ),
    "InferRequest.from_grpc": (lambda kserve: kserve_glue.from_grpc(MESSAGE), "request"),
    "InferRequest.from_inference_request": (
        lambda kserve: kserve_glue.from_inference_request("parsed", "m"),
        "request",
    ),
    "kserve.utils.utils.to_headers": (lambda kserve: kserve_glue.to_headers("context"), {}),
    **{
        str(relied): (lambda kserve, method=method: handled(kserve, method), "response")
        for method, relied in SERVICE_METHODS.items()
    },
}


def test_every_call_per_request_is_made_here():
    assert set(PER_REQUEST) <= set(RELIED_ON)
    assert set(CALLS_PER_REQUEST) == {str(relied) for relied in PER_REQUEST}


@pytest.mark.parametrize("relied", PER_REQUEST, ids=str)
def test_each_call_per_request_passes_the_keywords_recorded(relied, monkeypatch):
    """The calls made for each request pass their keywords as written, unchecked: here each
    one is made against a stand-in, and what it passed is compared with the record."""
    make, answer = CALLS_PER_REQUEST[str(relied)]
    kserve = KServeStandIn(relied, answer)
    monkeypatch.setattr(relied.owner, relied.name, kserve)  # a call on the class or module
    made = make(kserve)
    if inspect.iscoroutine(made):
        asyncio.run(made)
    calls = [(name, args, sorted(kwargs)) for name, args, kwargs in kserve.calls]
    assert calls == [(relied.name, (), sorted(relied.parameters or ()))], (
        f"{relied} is called otherwise than kserve_glue records"
    )


def test_infer_answers_with_the_models_answer_alone():
    kserve = KServeStandIn(kserve_glue.INFER, ("the answer", {"a": "header"}))
    assert asyncio.run(kserve_glue.infer(kserve, "m", "request", {})) == "the answer"


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
