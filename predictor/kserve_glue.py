"""Every touch of KServe's internals, in one module.

kserve 0.21 offers no public way to do four things this server needs: bind REST and gRPC to a
chosen host, put our routes before its own and drop its TimingMiddleware, build the gRPC
server with our servicer and interceptors, and keep binary BYTES tensors undecoded. Each needs
a private attribute, an overridden method or a constructor called with its parameters by name.
They are all here, or named here, with every other call into KServe the routes, the gRPC
service and the data plane make (readiness, inference, the model registry, request parsing,
its command-line parser): `RELIED_ON` lists every class attribute, instance attribute, module
attribute and callable this server relies on, and for each callable the parameters it is called
with (by keyword) or, for a method we override, the parameters KServe calls it with. The canary,
`tests/predictor/test_kserve_glue.py`, checks each name and each signature against the installed
kserve, so that an upgrade that removes or renames one fails there, by name, instead of the
server breaking at run time.

Calls made once, at start-up, pass their keywords through `Relied.keywords`, which checks them
against the record. Calls made for each request (`PER_REQUEST`) pass theirs as written, at no
cost: the canary makes each one against a stand-in that records what it is passed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable, Coroutine
from concurrent import futures
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
from fastapi import FastAPI
from google.protobuf.message import DecodeError
from grpc import aio
from kserve import InferRequest, Model, ModelServer
from kserve import model_server as kserve_model_server
from kserve.model import BaseKServeModel
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.infer_type import InferInput
from kserve.protocol.rest.server import RESTServer
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from kserve.utils import utils as kserve_utils
from timing_asgi import TimingMiddleware
from uvicorn.importer import import_from_string

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Relied:
    """One name in KServe this server relies on, on a class or a module (`owner`). An attribute:
    `parameters` is None. A callable we call: `parameters` are the keywords we pass, all of
    them, always by name (`keywords` checks a start-up call against them; the canary checks a
    call per request). A method we override (`overridden`): the parameters, after `self`, that
    KServe calls it with."""

    owner: type | ModuleType
    name: str
    parameters: tuple[str, ...] | None = None
    overridden: bool = False

    def keywords(self, **arguments: Any) -> dict[str, Any]:
        """`arguments`, checked to be exactly the recorded parameters: a call that passes
        another set fails here, at start-up, rather than drifting from what the canary checks.
        For calls made once, at start-up: two sets a call is too much per request."""
        if set(arguments) != set(self.parameters or ()):
            raise TypeError(
                f"{self.owner.__name__}.{self.name} is called with {sorted(arguments)}, "
                f"but kserve_glue records {sorted(self.parameters or ())}"
            )
        return arguments

    def __str__(self) -> str:
        return f"{self.owner.__name__}.{self.name}"


# The KServe callables called with arguments, each by keyword.
MODEL_SERVER_INIT = Relied(ModelServer, "__init__", ("http_port", "grpc_port", "enable_grpc"))
REGISTER_MODEL = Relied(ModelServer, "register_model", ("model",))
DATA_PLANE_INIT = Relied(DataPlane, "__init__", ("model_registry",))
REST_SERVER_INIT = Relied(
    RESTServer,
    "__init__",
    (
        "app",
        "data_plane",
        "model_repository_extension",
        "http_port",
        "access_log_format",
        "grace_period",
        "event_loop",
        "timeout_keep_alive",
    ),
)
GRPC_SERVER_INIT = Relied(
    GRPCServer,
    "__init__",
    ("port", "data_plane", "model_repository_extension", "kwargs", "grace_period"),
)
SERVICER_INIT = Relied(InferenceServicer, "__init__", ("data_plane", "model_repository_extension"))
VALIDATE_GRPC_REQUEST = Relied(InferenceServicer, "validate_grpc_request", ("request",))
MODEL_READY = Relied(DataPlane, "model_ready", ("model_name", "disable_predictor_health_check"))
INFER = Relied(DataPlane, "infer", ("model_name", "request", "headers"))
MODEL_FROM_REGISTRY = Relied(DataPlane, "get_model_from_registry", ("name",))
REGISTERED_MODELS = Relied(ModelRepository, "get_models", ())
IS_MODEL_READY = Relied(ModelRepository, "is_model_ready", ("name",))
FROM_GRPC = Relied(InferRequest, "from_grpc", ("request",))
FROM_INFERENCE_REQUEST = Relied(InferRequest, "from_inference_request", ("request", "model_name"))
TO_HEADERS = Relied(kserve_utils, "to_headers", ("context",))
MIDDLEWARES = Relied(RESTServer, "_add_middlewares", ("app",))
ENDPOINTS = Relied(RESTServer, "_register_endpoints", ("app",))
EXCEPTION_HANDLERS = Relied(RESTServer, "_add_exception_handlers", ("app",))

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
# Every method of the V2 service: ours (protocol/grpc_service.py) or KServe's (ServerLive,
# ServerMetadata), each called by `parsing_handlers` with the request it parsed and the context.
SERVICE_METHODS = {
    method.name: Relied(InferenceServicer, method.name, ("request", "context"))
    for method in SERVICE.methods
}
# The calls made for each request, each by keyword as written (not through `Relied.keywords`):
# the canary makes each against a stand-in and compares the keywords with the record.
PER_REQUEST: tuple[Relied, ...] = (
    *SERVICE_METHODS.values(),
    VALIDATE_GRPC_REQUEST,
    MODEL_READY,
    INFER,
    MODEL_FROM_REGISTRY,
    REGISTERED_MODELS,
    IS_MODEL_READY,
    FROM_GRPC,
    FROM_INFERENCE_REQUEST,
    TO_HEADERS,
)

RELIED_ON: tuple[Relied, ...] = (
    # ModelServer: built with our ports, then run piece by piece by `PredictorServer.start`
    MODEL_SERVER_INIT,
    REGISTER_MODEL,
    Relied(ModelServer, "setup_event_loop", ()),
    Relied(ModelServer, "register_signal_handler", ()),
    Relied(ModelServer, "_serve", ()),  # gathers `servers`
    Relied(ModelServer, "dataplane"),  # replaced by ours before any server is built
    Relied(ModelServer, "registered_models"),
    Relied(ModelServer, "model_repository_extension"),
    Relied(ModelServer, "http_port"),
    Relied(ModelServer, "grpc_port"),
    Relied(ModelServer, "access_log_format"),
    Relied(ModelServer, "grace_period"),
    Relied(ModelServer, "event_loop"),
    Relied(ModelServer, "timeout_keep_alive"),
    Relied(ModelServer, "max_threads"),
    Relied(ModelServer, "servers"),
    Relied(ModelServer, "_rest_server"),  # set as ModelServer.start sets it
    Relied(ModelServer, "_grpc_server"),  # read by ModelServer.stop on SIGTERM
    Relied(Model, "enable_latency_logging"),
    # REST: KServe's server, our app first
    REST_SERVER_INIT,
    Relied(RESTServer, "create_application", (), overridden=True),  # our app
    Relied(RESTServer, "start", ()),
    MIDDLEWARES,
    ENDPOINTS,
    EXCEPTION_HANDLERS,
    Relied(RESTServer, "config"),  # uvicorn.Config: host, forwarded_allow_ips
    Relied(RESTServer, "dataplane"),
    # gRPC: KServe's server, our servicer, interceptor and parsing
    GRPC_SERVER_INIT,
    Relied(GRPCServer, "start", ("max_workers",), overridden=True),  # our servicer, our host
    Relied(GRPCServer, "stop"),  # called by ModelServer.stop on SIGTERM, reads _server
    Relied(GRPCServer, "_data_plane"),
    Relied(GRPCServer, "_model_repository_extension"),
    Relied(GRPCServer, "_port"),
    Relied(GRPCServer, "_server"),  # read by GRPCServer.stop
    SERVICER_INIT,
    VALIDATE_GRPC_REQUEST,
    *SERVICE_METHODS.values(),
    Relied(  # overridden by protocol/grpc_service.py's StatusInterceptor
        ExceptionToStatusInterceptor,
        "handle_exception",
        ("ex", "request_or_iterator", "context", "method_name"),
        overridden=True,
    ),
    # the data plane, and what protocol/dataplane.py's PredictorDataPlane overrides
    DATA_PLANE_INIT,
    Relied(DataPlane, "metadata", (), overridden=True),
    Relied(
        DataPlane, "decode", ("body", "headers", "protocol_version", "model_name"), overridden=True
    ),
    Relied(DataPlane, "ready", (), overridden=True),  # readiness: every model ready
    # the data plane and its model registry, as the routes and the gRPC service call them
    MODEL_READY,
    INFER,
    MODEL_FROM_REGISTRY,
    Relied(DataPlane, "model_registry"),
    REGISTERED_MODELS,
    IS_MODEL_READY,
    # requests, as KServe builds them from a parsed REST body or a gRPC message
    FROM_GRPC,
    FROM_INFERENCE_REQUEST,
    TO_HEADERS,
    # KServe's command-line flags, the parent of the predictor's parser (settings.py)
    Relied(kserve_model_server, "parser"),
    # binary tensors, as kserve keeps them
    Relied(InferInput, "_raw_data"),
)
APP = "kserve.model_server:app"  # KServe's FastAPI app, which its RESTServer serves


def raw_data(tensor: InferInput) -> bytes | None:
    """A tensor's binary payload (gRPC `raw_input_contents`, REST binary extension), if any.
    kserve has no public accessor that leaves BYTES undecoded (`as_numpy` decodes UTF-8)."""
    raw = getattr(tensor, "_raw_data", None)
    return bytes(raw) if raw is not None else None


def set_raw_data(tensor: InferInput, raw: bytes) -> None:
    tensor._raw_data = raw


def bracketed(host: str) -> str:
    """A host as it goes before `:port`: IPv6 literals in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class RestServer(RESTServer):
    """KServe's REST server bound to `host`, trusting forwarded headers from loopback only, with
    `install(app, dataplane)` run before KServe registers its own routes and `finish(app)`
    after them."""

    def __init__(
        self,
        *,
        host: str,
        install: Callable[[FastAPI, Any], None],
        finish: Callable[[FastAPI], None],
        **kserve_arguments: Any,
    ):
        super().__init__(**REST_SERVER_INIT.keywords(app=APP, **kserve_arguments))
        self.config.host = host
        # X-Forwarded-For / -Proto are believed from loopback only: from the auth proxy, which
        # builds them from the peer it saw. Whatever a client writes there never gets this far.
        self.config.forwarded_allow_ips = ["127.0.0.1", "::1"]
        self._install, self._finish = install, finish

    def create_application(self) -> None:
        app = import_from_string(APP)
        self._install(app, self.dataplane)
        self._add_middlewares(**MIDDLEWARES.keywords(app=app))
        # KServe's TimingMiddleware logs two trace lines per request and calls getrusage() for
        # the whole process around each one (a sixth of the event loop's time under load,
        # measured); its "cpu time" counts every thread's work, not the request's.
        app.user_middleware = [m for m in app.user_middleware if m.cls is not TimingMiddleware]
        self._register_endpoints(**ENDPOINTS.keywords(app=app))
        self._add_exception_handlers(**EXCEPTION_HANDLERS.keywords(app=app))
        self._finish(app)


class GrpcServer(GRPCServer):
    """KServe's gRPC server with our servicer class, interceptors, message limit and host."""

    def __init__(
        self,
        *,
        host: str,
        servicer: type[InferenceServicer],
        interceptors: tuple,
        max_message_bytes: int,
        **kserve_arguments: Any,
    ):
        super().__init__(**GRPC_SERVER_INIT.keywords(**kserve_arguments))
        self.host, self.servicer = host, servicer
        self.interceptors, self.max_message_bytes = interceptors, max_message_bytes

    async def start(self, max_workers: int) -> None:
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=self.interceptors,
            options=[
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.max_receive_message_length", self.max_message_bytes),
            ],
        )
        servicer = self.servicer(
            **SERVICER_INIT.keywords(
                data_plane=self._data_plane,
                model_repository_extension=self._model_repository_extension,
            )
        )
        self._server.add_generic_rpc_handlers((parsing_handlers(servicer),))
        address = f"{bracketed(self.host)}:{self._port}"
        self._server.add_insecure_port(address)
        logger.info("Starting gRPC server on %s", address)
        await self._server.start()
        await self._server.wait_for_termination()


def parsing_handlers(servicer) -> grpc.GenericRpcHandler:
    """The servicer's methods, each parsing its own request: the generated registration
    deserialises before any handler runs, and a message that is not valid protobuf then ends
    as UNKNOWN with a traceback in the log; here it is INVALID_ARGUMENT and one line."""
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            _parsed(getattr(servicer, method.name), getattr(pb, method.input_type.name)),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
        for method in SERVICE.methods
    }
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)


def _parsed(behaviour, request_type):
    """`behaviour` called with the request parsed from `raw`, by the keywords SERVICE_METHODS
    records (checked by the canary, not on each call)."""

    async def parse_then_call(raw: bytes, context: aio.ServicerContext):
        try:
            request = request_type.FromString(raw)
        except DecodeError:
            logger.warning("refused a %s that is not valid protobuf", request_type.__name__)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"not a valid {request_type.__name__} message"
            )
        return await behaviour(request=request, context=context)

    return parse_then_call


# The calls made for each request (PER_REQUEST), each by keyword: no check on the way.


def validate_grpc_request(request: pb.ModelInferRequest) -> None:
    """KServe's own checks of a `ModelInferRequest` (raw contents against inputs), raising its
    InvalidInput."""
    InferenceServicer.validate_grpc_request(request=request)


async def model_ready(
    dataplane: DataPlane, model_name: str, *, disable_predictor_health_check: bool
) -> bool:
    """Whether the model is ready; ModelNotFound (404 / NOT_FOUND) if no model has the name.
    `disable_predictor_health_check`: KServe's flag for a transformer's predictor, which this
    server has none of; its inference routes pass True, its readiness routes False."""
    return await dataplane.model_ready(
        model_name=model_name, disable_predictor_health_check=disable_predictor_health_check
    )


async def infer(
    dataplane: DataPlane, model_name: str, request: InferRequest, headers: dict[str, str]
) -> Any:
    """The model's answer to `request` (what its `postprocess` returns); the response headers
    KServe returns beside it are not used."""
    answer, _response_headers = await dataplane.infer(
        model_name=model_name, request=request, headers=headers
    )
    return answer


def model_from_registry(dataplane: DataPlane, name: str) -> BaseKServeModel:
    """The model registered by `name`, ready or not; ModelNotFound if none is."""
    return dataplane.get_model_from_registry(name=name)


def registered_models(dataplane: DataPlane) -> dict[str, BaseKServeModel]:
    """Every model in the data plane's registry, by name."""
    return dataplane.model_registry.get_models()


async def is_model_ready(dataplane: DataPlane, name: str) -> bool:
    """Whether the registered model `name` is loaded (False if there is none by that name)."""
    return await dataplane.model_registry.is_model_ready(name=name)


def from_grpc(request: pb.ModelInferRequest) -> InferRequest:
    """KServe's InferRequest from a gRPC message (its contents copied)."""
    return InferRequest.from_grpc(request=request)


def from_inference_request(request: InferenceRequest, model_name: str) -> InferRequest:
    """KServe's InferRequest from a validated V2 REST body."""
    return InferRequest.from_inference_request(request=request, model_name=model_name)


def to_headers(context: grpc.ServicerContext) -> dict[str, str]:
    """A gRPC call's metadata as the headers KServe's data plane takes."""
    return kserve_utils.to_headers(context=context)


def kserve_parser() -> argparse.ArgumentParser:
    """KServe's command-line parser (`--http_port`, `--grpc_port`, `--enable_grpc`, ...): the
    parent of the predictor's."""
    return kserve_model_server.parser


# What `PredictorServer` (server.py) does with KServe's `ModelServer`, in the order it does it.


def init_model_server(
    server: ModelServer,
    *,
    http_port: int,
    grpc_port: int,
    enable_grpc: bool,
    dataplane_class: type[DataPlane],
) -> None:
    """`ModelServer.__init__` with our ports, then our data plane in place of the one it made,
    on the same model registry; the REST and gRPC servers are built from it afterwards."""
    ModelServer.__init__(
        server,
        **MODEL_SERVER_INIT.keywords(
            http_port=http_port, grpc_port=grpc_port, enable_grpc=enable_grpc
        ),
    )
    server.dataplane = dataplane_class(
        **DATA_PLANE_INIT.keywords(model_registry=server.registered_models)
    )


def register_model(server: ModelServer, model: Model, *, latency_logging: bool) -> None:
    server.register_model(**REGISTER_MODEL.keywords(model=model))
    model.enable_latency_logging = latency_logging


def rest_server(
    server: ModelServer,
    *,
    host: str,
    install: Callable[[FastAPI, Any], None],
    finish: Callable[[FastAPI], None],
) -> RestServer:
    """KServe's REST server as `ModelServer.start` builds it (one worker), on `host`, our routes
    installed by `install` before KServe's own and `finish` run after them."""
    return RestServer(
        host=host,
        install=install,
        finish=finish,
        data_plane=server.dataplane,
        model_repository_extension=server.model_repository_extension,
        http_port=server.http_port,
        access_log_format=server.access_log_format,
        grace_period=server.grace_period,
        event_loop=server.event_loop,
        timeout_keep_alive=server.timeout_keep_alive,
    )


def grpc_server(
    server: ModelServer,
    *,
    host: str,
    servicer: type[InferenceServicer],
    interceptors: tuple,
    max_message_bytes: int,
) -> GrpcServer:
    """KServe's gRPC server as `ModelServer.start` builds it, with our servicer, interceptors,
    message limit and host (KServe's `kwargs`, its CLI's message limits, are not used)."""
    return GrpcServer(
        host=host,
        servicer=servicer,
        interceptors=interceptors,
        max_message_bytes=max_message_bytes,
        port=server.grpc_port,
        data_plane=server.dataplane,
        model_repository_extension=server.model_repository_extension,
        kwargs={},
        grace_period=server.grace_period,
    )


def add_servers(server: ModelServer, *, rest: RestServer, grpc: GrpcServer | None) -> None:
    """The servers' coroutines, to run with `serve`; and where `ModelServer.stop` finds them to
    shut down on SIGTERM."""
    server.servers.append(rest.start())
    if grpc is not None:
        server.servers.append(grpc.start(max_workers=server.max_threads))
    server._rest_server, server._grpc_server = rest, grpc


def serve(server: ModelServer, *, also: Coroutine) -> None:
    """Run every server's coroutine and `also` until stopped, as `ModelServer.start` ends: its
    event loop's default executor and exception handler, its signal handlers, then `_serve`."""
    server.servers.append(also)
    server.setup_event_loop()
    server.register_signal_handler()
    asyncio.run(server._serve())
