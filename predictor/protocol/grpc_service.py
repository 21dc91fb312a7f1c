"""The V2 gRPC service: KServe's servicer, with readiness that follows the model.

The model-repository extension (load / unload) answers UNIMPLEMENTED: a caller must not be
able to unload the one model this server exists for. kserve 0.21's `ServerReady` answers true
with no model loaded, and `ModelInfer` on a model that
is still loading makes its data plane start a second load on the event loop. Here both follow
the model, and bad input maps to INVALID_ARGUMENT or RESOURCE_EXHAUSTED with the same message
the REST answer carries. Versions work as on REST: the one advertised, or none named; any other
is NOT_FOUND (kserve 0.21 accepts any). Triton's `ModelStreamInfer` and `ModelConfig` are not
part of the V2 protocol and answer UNIMPLEMENTED.
"""

from __future__ import annotations

import logging

from grpc import ServicerContext, StatusCode, aio
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.servicer import InferenceServicer

from .. import kserve_glue
from ..errors import BadRequest
from . import outputs
from .dataplane import PredictorDataPlane

REPOSITORY_CLOSED = "the model-repository extension is not served: the model is fixed at start-up"

logger = logging.getLogger(__name__)


class PredictorServicer(InferenceServicer):
    def __init__(self, data_plane: PredictorDataPlane, model_repository_extension):
        super().__init__(
            **kserve_glue.SERVICER_INIT.keywords(
                data_plane=data_plane, model_repository_extension=model_repository_extension
            )
        )
        self.data_plane = data_plane  # our own reference: KServe's is private

    async def ServerReady(self, request: pb.ServerReadyRequest, context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=await self.data_plane.ready())

    async def RepositoryModelLoad(self, request, context: ServicerContext):
        await context.abort(StatusCode.UNIMPLEMENTED, REPOSITORY_CLOSED)

    async def RepositoryModelUnload(self, request, context: ServicerContext):
        await context.abort(StatusCode.UNIMPLEMENTED, REPOSITORY_CLOSED)

    async def ModelReady(self, request: pb.ModelReadyRequest, context) -> pb.ModelReadyResponse:
        self.data_plane.model_serving(request.name, request.version)
        ready = await kserve_glue.model_ready(
            self.data_plane, request.name, disable_predictor_health_check=False
        )
        return pb.ModelReadyResponse(ready=ready)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context):
        metadata = self.data_plane.model_serving(request.name, request.version).metadata()
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=metadata["inputs"],
            outputs=metadata["outputs"],
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: ServicerContext
    ) -> pb.ModelInferResponse:
        """KServe's, answering with the requested outputs only (`outputs.py`)."""
        ready = await kserve_glue.model_ready(  # NOT_FOUND if there is no such model
            self.data_plane, request.model_name, disable_predictor_health_check=True
        )
        if not ready:
            raise ModelNotReady(request.model_name)
        kserve_glue.validate_grpc_request(request)
        model = self.data_plane.model_serving(request.model_name, request.model_version)
        # The message as parsed, and again as KServe's InferRequest copies its contents.
        size = request.ByteSize()
        with model.budget.take(2 * size):
            answer = await kserve_glue.infer(
                self.data_plane,
                request.model_name,
                kserve_glue.from_grpc(request),
                kserve_glue.to_headers(context),
            )
        return outputs.to_grpc(answer)


class StatusInterceptor(ExceptionToStatusInterceptor):
    """Our bad-input errors carry their own status code; the rest is KServe's mapping."""

    async def handle_exception(self, ex, request_or_iterator, context, method_name):
        if isinstance(ex, aio.AbortError):  # the handler has set its status: let gRPC send it
            raise ex
        if isinstance(ex, BadRequest):
            logger.warning("refused %s: %s", method_name, ex)
            await context.abort(ex.grpc_code, str(ex))
        if isinstance(ex, ModelNotReady):
            await context.abort(StatusCode.UNAVAILABLE, str(ex))
        # KServe's own refusals (its request checks, an unknown model): one line, not the
        # traceback its interceptor logs for each.
        if isinstance(ex, InvalidInput):
            logger.warning("refused %s: %s", method_name, ex)
            await context.abort(StatusCode.INVALID_ARGUMENT, str(ex))
        if isinstance(ex, ModelNotFound):
            logger.warning("refused %s: %s", method_name, ex)
            await context.abort(StatusCode.NOT_FOUND, str(ex))
        await super().handle_exception(ex, request_or_iterator, context, method_name)
