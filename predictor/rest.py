"""REST routes the predictor adds to KServe's FastAPI app, and its error answers.

Registered before KServe's own routes, so where both match a path ours answers:
- `POST /v2/models/{name}/infer`: kserve 0.21 decodes binary BYTES inputs as UTF-8 (raw image
  bytes give a 500); ours keeps them bytes, and owns JSON parsing so bad bodies get a 400.
- `GET /v2/health/ready`: kserve 0.21 says ready with no model ready; ours follows the model.
- `GET /v2/models/{name}`: KServe's drops `versions` and `parameters`; ours says which file is
  live (URI, location, run, registry version, SHA-256).
- `/v2/repository/*`: KServe mounts its model-repository extension (load / unload / index) by
  default, so any caller could unload the model for good. This server serves the one model
  chosen at start-up: every method there answers 404, and the routes leave the OpenAPI document.
- The course's `GET /health` and `POST /upload`, and `/docs` + `/redoc` to list them.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import ModelNotFound, ModelNotReady
from kserve.protocol.dataplane import DataPlane
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import codec
from .codec import ImageBatch
from .contract import MODEL_NAME
from .errors import BadRequest, TooLarge

logger = logging.getLogger(__name__)


class Prediction(BaseModel):
    """The course's `/upload` answer."""

    prediction: str
    values: list[float]


REPOSITORY_PREFIX = "/v2/repository"
OPENAPI_URL = "/openapi.json"  # FastAPI's default, which KServe's app keeps
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def install_routes(app: FastAPI, dataplane: DataPlane) -> None:
    """Add the predictor's routes; call before KServe registers its own."""

    @app.api_route(REPOSITORY_PREFIX + "/{rest:path}", methods=ALL_METHODS, include_in_schema=False)
    async def repository_closed(rest: str) -> JSONResponse:
        return JSONResponse({"error": "the model-repository extension is not served"}, 404)

    schema = app.openapi

    def openapi_without_repository() -> dict:
        document = schema()  # FastAPI caches it: filtered once, then the same dict
        for path in [p for p in document.get("paths", {}) if p.startswith(REPOSITORY_PREFIX)]:
            del document["paths"][path]
        return document

    app.openapi = openapi_without_repository  # type: ignore[method-assign]  # FastAPI's hook

    async def model_ready_or_raise(model_name: str) -> None:
        if not await dataplane.model_ready(model_name, True):  # ModelNotFound -> 404
            raise ModelNotReady(model_name)

    @app.post("/v2/models/{model_name}/infer", tags=["V2"], response_model=None)
    async def infer(model_name: str, request: Request) -> Response:
        """V2 inference: JSON, or the binary-data extension with raw image bytes."""
        await model_ready_or_raise(model_name)
        body = await request.body()
        # Parsing a body of many megabytes takes tens of milliseconds: off the event loop.
        infer_request = await asyncio.get_running_loop().run_in_executor(
            None,
            codec.infer_request_from_rest,
            body,
            request.headers.get(INFERENCE_CONTENT_LENGTH_HEADER),
            model_name,
        )
        response, _ = await dataplane.infer(model_name, infer_request, dict(request.headers))
        payload, json_length = response.to_rest()
        if json_length is None:
            return Response(orjson.dumps(payload), media_type="application/json")
        return Response(
            payload,
            media_type="application/octet-stream",
            headers={INFERENCE_CONTENT_LENGTH_HEADER: str(json_length)},
        )

    @app.get("/v2/models/{model_name}", tags=["V2"])
    async def model_metadata(model_name: str) -> JSONResponse:
        """Inputs and outputs, and which model file is live (`versions`, `parameters`)."""
        return JSONResponse(dataplane.get_model_from_registry(model_name).metadata())

    @app.get("/v2/health/ready", tags=["V2"])
    async def server_ready() -> JSONResponse:
        """Ready only when every registered model is loaded and warmed up."""
        registry = dataplane.model_registry
        waiting = [
            name for name in registry.get_models() if not await registry.is_model_ready(name)
        ]
        if waiting or not registry.get_models():  # answered, not raised: no traceback a probe
            detail = ", ".join(waiting) or "no model is loaded"
            return JSONResponse({"ready": False, "error": f"not ready: {detail}"}, 503)
        return JSONResponse({"ready": True})

    @app.get("/health", tags=["course"])
    async def health() -> dict:
        """The course's health check: the process answers (no token needed behind the proxy)."""
        return {"status": "OK"}

    @app.post("/upload", tags=["course"], response_model=Prediction)
    async def upload(file: UploadFile = File(...)) -> dict:  # noqa: B008 (FastAPI's idiom)
        """The course's route: one image file as multipart part `file`."""
        await model_ready_or_raise(MODEL_NAME)
        model = dataplane.get_model_from_registry(MODEL_NAME)
        values = await model.classify(ImageBatch(images=(await file.read(),)))
        return codec.prediction_rows(values)[0]

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> Response:
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{MODEL_NAME} - Swagger UI")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Response:
        return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{MODEL_NAME} - ReDoc")


def install_error_answers(app: FastAPI) -> None:
    """Bad input gets its own status and a message naming the problem; no traceback in logs."""

    async def bad_request(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BadRequest)
        logger.warning("refused request: %s", exc)
        return JSONResponse({"error": str(exc)}, status_code=exc.http_status)

    async def unknown_model(_: Request, exc: ModelNotFound) -> JSONResponse:
        logger.warning("refused request: %s", exc)
        return JSONResponse({"error": str(exc)}, status_code=404)

    async def not_ready(_: Request, exc: ModelNotReady) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=503)

    app.add_exception_handler(BadRequest, bad_request)
    app.add_exception_handler(ModelNotFound, unknown_model)
    app.add_exception_handler(ModelNotReady, not_ready)


class BodyLimit:
    """ASGI middleware: refuse request bodies over `max_bytes` with 413 before reading them.

    A declared Content-Length over the limit is refused at once; a chunked body is counted as
    it arrives and the handler reading it gets `TooLarge`.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            message = f"request body of {int(declared)} bytes is over the limit of {self.max_bytes}"
            logger.warning("refused request: %s", message)
            response = JSONResponse({"error": message}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise TooLarge(f"request body is over the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, counting_receive, send)
