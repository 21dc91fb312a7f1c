"""KServe's model server, bound where it is safe and serving probes while the model loads.

Two things kserve 0.21's `ModelServer` does not do:
- it binds REST to 0.0.0.0 and gRPC to [::]; in the pod the auth proxy must be the only door,
  so both listen on a configurable host (loopback by default);
- it refuses to start until a model is ready, so a slow model download looks like a dead
  process. Here the servers start first (`/v2/health/live` answers at once, readiness is false),
  the model loads in a worker thread, and a load that fails ends the process with exit 1 and
  one ERROR line.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from typing import NoReturn

import kserve
from kserve.protocol.grpc.interceptors import LoggingInterceptor
from starlette.middleware.gzip import GZipMiddleware

from . import kserve_glue, logsafe
from .memory import MemoryBudget
from .protocol.bodies import BodyLimit, DecodedBody
from .protocol.dataplane import PredictorDataPlane
from .protocol.grpc_service import PredictorServicer, StatusInterceptor
from .rest.routes import install_error_answers, install_routes
from .settings import Settings
from .sources import redact

logger = logging.getLogger(__name__)

# Smaller answers (one image's prediction is ~250 bytes) gain nothing from gzip but its cost.
GZIP_MINIMUM_BYTES = 1024


def fail_to_load(message: str) -> NoReturn:
    """One ERROR line naming the model and the cause, then exit 1 at once. An orderly shutdown
    from inside the running servers prints 70-odd more lines (uvicorn's lifespan error, gRPC's
    "Event loop is closed", un-awaited coroutines) that say nothing more: the process has served
    no inference, and Kubernetes restarts it."""
    logger.error("%s", message)
    for handler in logging.getLogger("predictor").handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


class PredictorServer(kserve.ModelServer):
    """KServe's `ModelServer`, every touch of its insides through `kserve_glue`."""

    def __init__(self, settings: Settings, budget: MemoryBudget):
        kserve_glue.init_model_server(
            self,
            http_port=settings.http_port,
            grpc_port=settings.grpc_port,
            enable_grpc=settings.enable_grpc,
            dataplane_class=PredictorDataPlane,
        )
        self.settings = settings
        self.budget = budget  # the model's: bodies are held in it as well as pixels
        # Our modules log under "predictor"; give them KServe's handlers and format.
        ours = logging.getLogger("predictor")
        ours.handlers = logging.getLogger("kserve").handlers
        ours.setLevel(logging.INFO)
        ours.propagate = False

    def start(self, models: list[kserve.Model]) -> None:
        settings = self.settings
        for model in models:
            kserve_glue.register_model(self, model, latency_logging=settings.log_requests)
        if not settings.log_requests:  # uvicorn formats an access line only if it has handlers
            access = logging.getLogger("uvicorn.access")
            access.handlers, access.propagate = [], False
        rest = kserve_glue.rest_server(
            self,
            host=settings.listen_host,
            install=self._install_routes,
            finish=install_error_answers,
        )
        grpc = None
        if settings.enable_grpc:
            interceptors: tuple = (StatusInterceptor(),)
            if settings.log_requests:
                interceptors = (LoggingInterceptor(), *interceptors)
            grpc = kserve_glue.grpc_server(
                self,
                host=settings.listen_host,
                servicer=PredictorServicer,
                interceptors=interceptors,
                max_message_bytes=settings.max_request_bytes,
            )
        kserve_glue.add_servers(self, rest=rest, grpc=grpc)
        logsafe.install()  # on every handler configured by now, uvicorn's and gRPC's included
        # Decoding and parsing threads hold the GIL in long C calls; with Python's default 5 ms
        # switch interval, every socket operation of the event loop can wait that long to get
        # it back. 1 ms keeps probes prompt under load for a negligible throughput cost.
        sys.setswitchinterval(0.001)
        kserve_glue.serve(self, also=self._load(models))

    def _install_routes(self, app, dataplane) -> None:
        """Ours before KServe's (ours win where paths overlap). Middleware, outermost first:
        responses gzipped when the client accepts it (as Triton does), the body limit on the
        wire, then on the decoded body."""
        limit = self.settings.max_request_bytes
        budget = self.budget
        app.add_middleware(DecodedBody, max_bytes=limit, budget=budget)
        app.add_middleware(BodyLimit, max_bytes=limit, budget=budget)
        app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES, compresslevel=6)
        install_routes(app, dataplane, self.settings.oauth2_token_url)

    async def _load(self, models: list[kserve.Model]) -> None:
        """Load each model in a worker thread; a failure ends the whole server."""
        loop = asyncio.get_running_loop()
        for model in models:
            try:
                await loop.run_in_executor(None, model.load)
            except Exception as exc:
                where = redact(getattr(model, "model_uri", ""))
                fail_to_load(f"cannot load model {model.name} from {where}: {redact(str(exc))}")
        # TensorFlow and Keras leave ~10^6 long-lived objects; a full garbage collection that
        # walks them all stalls every thread, the event loop included, for 100+ ms. Freezing
        # them into the permanent generation keeps collections to what requests allocate.
        gc.collect()
        gc.freeze()
