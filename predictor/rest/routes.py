"""REST routes the predictor adds to KServe's FastAPI app, and its error answers (every one
`{"error": "..."}`, as the V2 protocol has them, FastAPI's own 404 / 405 / 422 included).

Registered before KServe's own routes, so where both match a path ours answers:
- `POST /v2/models/{name}[/versions/{v}]/infer`: kserve 0.21 decodes binary BYTES inputs as
  UTF-8 (raw image bytes give a 500); ours keeps them bytes, owns JSON parsing so bad bodies
  get a 400, and answers with the requested outputs only (`outputs.py`).
- `/v2/models/{name}/versions/{v}[/ready|/infer]`: kserve 0.21 answers 501 for every version;
  here the version `versions` advertises works, any other is a 404.
- `GET /v2/health/ready`: kserve 0.21 says ready with no model ready; ours follows the model.
- `GET /v2/models/{name}`: KServe's drops `versions` and `parameters`; ours says which file is
  live (URI, location, run, registry version, SHA-256).
- `/v2/repository/*`: KServe mounts its model-repository extension (load / unload / index) by
  default, so any caller could unload the model for good. This server serves the one model
  chosen at start-up: every method there answers 404, and the routes leave the OpenAPI document.
- The course's `GET /health` and `POST /upload`, and `/docs` + `/redoc` to list them, with their
  assets from the image (`docs.py`) and a document that says how to authorize (`openapi.py`).
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import ModelNotFound, ModelNotReady
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ..contract import MODEL_NAME
from ..errors import BadRequest
from ..model import CatsDogsOtherModel
from ..protocol import codec, outputs
from ..protocol.codec import ImageBatch
from ..protocol.dataplane import PredictorDataPlane
from . import openapi
from .docs import install_docs

logger = logging.getLogger(__name__)


class Prediction(BaseModel):
    """The course's `/upload` answer."""

    prediction: str
    values: list[float]


REPOSITORY_PREFIX = openapi.REPOSITORY_PREFIX
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def install_routes(app: FastAPI, dataplane: PredictorDataPlane, token_url: str = "") -> None:
    """Add the predictor's routes; call before KServe registers its own. `token_url`: the
    issuer's token endpoint, offered by `/docs` for OAuth2 client credentials."""

    @app.api_route(REPOSITORY_PREFIX + "/{rest:path}", methods=ALL_METHODS, include_in_schema=False)
    async def repository_closed(rest: str) -> JSONResponse:
        return JSONResponse({"error": "the model-repository extension is not served"}, 404)

    schema = app.openapi
    described: list[dict] = []

    def openapi_described() -> dict:
        if not described:  # FastAPI caches its document: described once, then the same dict
            described.append(openapi.describe(schema(), token_url))
        return described[0]

    app.openapi = openapi_described  # type: ignore[method-assign]  # FastAPI's hook
    install_docs(app, token_url)

    async def served(model_name: str, version: str | None = None) -> CatsDogsOtherModel:
        """The model, ready, and serving `version` if one is named."""
        if not await dataplane.model_ready(model_name, True):  # ModelNotFound -> 404
            raise ModelNotReady(model_name)
        return dataplane.model_serving(model_name, version)

    async def infer(model_name: str, version: str | None, request: Request) -> Response:
        model = await served(model_name, version)
        body = await request.body()
        header_length = request.headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        # What its JSON parses into, bounded and taken from the memory budget before parsing.
        with model.budget.take(codec.json_cost(body, header_length, model.max_images)):
            # Parsing a body of many megabytes takes tens of milliseconds: off the event loop.
            infer_request = await asyncio.get_running_loop().run_in_executor(
                None, codec.infer_request_from_rest, body, header_length, model_name
            )
            infer_request.model_version = version
            answer, _ = await dataplane.infer(model_name, infer_request, dict(request.headers))
        payload, json_length = outputs.to_rest(answer)
        if json_length is None:
            return Response(payload, media_type="application/json")
        return Response(
            payload,
            media_type="application/octet-stream",
            headers={INFERENCE_CONTENT_LENGTH_HEADER: str(json_length)},
        )

    @app.post("/v2/models/{model_name}/infer", tags=["V2"], response_model=None)
    async def infer_any_version(model_name: str, request: Request) -> Response:
        """V2 inference: JSON, or the binary-data extension with raw image bytes."""
        return await infer(model_name, None, request)

    @app.post(
        "/v2/models/{model_name}/versions/{model_version}/infer", tags=["V2"], response_model=None
    )
    async def infer_version(model_name: str, model_version: str, request: Request) -> Response:
        """V2 inference on the version served (the one `versions` lists); others: 404."""
        return await infer(model_name, model_version, request)

    @app.get("/v2/models/{model_name}", tags=["V2"])
    async def model_metadata(model_name: str) -> JSONResponse:
        """Inputs and outputs, and which model file is live (`versions`, `parameters`)."""
        return JSONResponse(dataplane.get_model_from_registry(model_name).metadata())

    @app.get("/v2/models/{model_name}/versions/{model_version}", tags=["V2"])
    async def version_metadata(model_name: str, model_version: str) -> JSONResponse:
        """The metadata, if `model_version` is the version served."""
        return JSONResponse(dataplane.model_serving(model_name, model_version).metadata())

    @app.get("/v2/models/{model_name}/versions/{model_version}/ready", tags=["V2"])
    async def version_ready(model_name: str, model_version: str) -> JSONResponse:
        """Ready, if `model_version` is the version served and loaded."""
        await served(model_name, model_version)
        return JSONResponse({"name": model_name, "ready": True})

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
        model = await served(MODEL_NAME)
        values = await model.classify(ImageBatch(images=(await file.read(),)))
        return codec.prediction_rows(values)[0]


def install_error_answers(app: FastAPI) -> None:
    """Bad input gets its own status and a message naming the problem; no traceback in logs."""

    async def bad_request(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BadRequest)
        logger.warning("refused request: %s", exc)
        return JSONResponse({"error": str(exc)}, exc.http_status, headers=exc.headers or None)

    async def unknown_model(_: Request, exc: ModelNotFound) -> JSONResponse:
        logger.warning("refused request: %s", exc)
        return JSONResponse({"error": str(exc)}, status_code=404)

    async def not_ready(_: Request, exc: ModelNotReady) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=503)

    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's and FastAPI's own refusals (no such route, method not allowed), in the
        # protocol's error shape instead of FastAPI's `{"detail": ...}`.
        message = exc.detail
        if exc.status_code == 404 and message == "Not Found":
            message = "not found: no such route"
        elif exc.status_code == 405 and exc.headers and "Allow" in exc.headers:
            message = f"method not allowed here; allowed: {exc.headers['Allow']}"
        return JSONResponse({"error": message}, exc.status_code, headers=exc.headers)

    async def invalid_parameters(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error.get("loc", ())) or "request"
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return JSONResponse({"error": "invalid request: " + "; ".join(problems)}, 422)

    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_parameters)  # type: ignore[arg-type]
    app.add_exception_handler(BadRequest, bad_request)
    app.add_exception_handler(ModelNotFound, unknown_model)
    app.add_exception_handler(ModelNotReady, not_ready)
