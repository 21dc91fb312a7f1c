"""KServe's model server, bound where it is safe and serving probes while the model loads.

Two things kserve 0.21's `ModelServer` does not do:
- it binds REST to 0.0.0.0 and gRPC to [::]; in the pod the auth proxy must be the only door,
  so both listen on a configurable host (loopback by default);
- it refuses to start until a model is ready, so a slow model download looks like a dead
  process. Here the servers start first (`/v2/health/live` answers at once, readiness is false),
  the model loads in a worker thread, and a load that fails ends the process non-zero.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from concurrent import futures

import kserve
from grpc import aio
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import LoggingInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.rest.server import RESTServer
from timing_asgi import TimingMiddleware
from uvicorn.importer import import_from_string

from . import logsafe
from .grpc_service import PredictorDataPlane, PredictorServicer, StatusInterceptor
from .rest import BodyLimit, install_error_answers, install_routes
from .settings import Settings
from .sources import redact

logger = logging.getLogger(__name__)


class ModelLoadFailed(RuntimeError):
    """The model could not be loaded; the process must end so Kubernetes restarts it."""


class _RESTServer(RESTServer):
    def __init__(self, settings: Settings, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.host = settings.listen_host
        # X-Forwarded-For / -Proto are believed from loopback only: from the auth proxy, which
        # builds them from the peer it saw. Whatever a client writes there never gets this far.
        self.config.forwarded_allow_ips = ["127.0.0.1", "::1"]
        self.settings = settings
        if not settings.log_requests:  # uvicorn formats an access line only if it has handlers
            access = logging.getLogger("uvicorn.access")
            access.handlers, access.propagate = [], False

    def create_application(self) -> None:
        app = import_from_string("kserve.model_server:app")
        app.add_middleware(BodyLimit, max_bytes=self.settings.max_request_bytes)
        self._add_middlewares(app)
        # KServe's TimingMiddleware logs two trace lines per request and calls getrusage() for
        # the whole process around each one (a sixth of the event loop's time under load,
        # measured); its "cpu time" counts every thread's work, not the request's.
        app.user_middleware = [m for m in app.user_middleware if m.cls is not TimingMiddleware]
        install_routes(app, self.dataplane)  # before KServe's: ours win where paths overlap
        self._register_endpoints(app)
        self._add_exception_handlers(app)
        install_error_answers(app)


class _GRPCServer(GRPCServer):
    def __init__(self, settings: Settings, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.settings = settings

    async def start(self, max_workers: int) -> None:
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(
                (LoggingInterceptor(), StatusInterceptor())
                if self.settings.log_requests
                else (StatusInterceptor(),)
            ),
            options=[
                ("grpc.max_send_message_length", self.settings.max_request_bytes),
                ("grpc.max_receive_message_length", self.settings.max_request_bytes),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            PredictorServicer(self._data_plane, self._model_repository_extension), self._server
        )
        address = f"{_grpc_host(self.settings.listen_host)}:{self._port}"
        self._server.add_insecure_port(address)
        logger.info("Starting gRPC server on %s", address)
        await self._server.start()
        await self._server.wait_for_termination()


def _grpc_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class PredictorServer(kserve.ModelServer):
    def __init__(self, settings: Settings):
        super().__init__(
            http_port=settings.http_port,
            grpc_port=settings.grpc_port,
            enable_grpc=settings.enable_grpc,
        )
        self.settings = settings
        self.dataplane = PredictorDataPlane(model_registry=self.registered_models)
        # Our modules log under "predictor"; give them KServe's handlers and format.
        ours = logging.getLogger("predictor")
        ours.handlers = logging.getLogger("kserve").handlers
        ours.setLevel(logging.INFO)
        ours.propagate = False

    def start(self, models: list[kserve.Model]) -> None:
        for model in models:
            self.register_model(model)
            model.enable_latency_logging = self.settings.log_requests
        self._rest_server = _RESTServer(
            self.settings,
            "kserve.model_server:app",
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            access_log_format=self.access_log_format,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
        )
        self.servers.append(self._rest_server.start())
        if self.enable_grpc:
            self._grpc_server = _GRPCServer(
                self.settings,
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs={},
                grace_period=self.grace_period,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.servers.append(self._load(models))
        logsafe.install()  # on every handler configured by now, uvicorn's and gRPC's included
        # Decoding and parsing threads hold the GIL in long C calls; with Python's default 5 ms
        # switch interval, every socket operation of the event loop can wait that long to get
        # it back. 1 ms keeps probes prompt under load for a negligible throughput cost.
        sys.setswitchinterval(0.001)
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())

    async def _load(self, models: list[kserve.Model]) -> None:
        """Load each model in a worker thread; a failure ends the whole server."""
        loop = asyncio.get_running_loop()
        for model in models:
            try:
                await loop.run_in_executor(None, model.load)
            except Exception as exc:
                where = redact(getattr(model, "model_uri", ""))
                raise ModelLoadFailed(
                    f"cannot load model {model.name} from {where}: {redact(str(exc))}"
                ) from exc
        # TensorFlow and Keras leave ~10^6 long-lived objects; a full garbage collection that
        # walks them all stalls every thread, the event loop included, for 100+ ms. Freezing
        # them into the permanent generation keeps collections to what requests allocate.
        gc.collect()
        gc.freeze()
