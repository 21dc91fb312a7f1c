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
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.datastructures import Default
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import ModelNotFound, ModelNotReady
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from .. import kserve_glue
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
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class Endpoints:
    """The predictor's routes on one data plane. Each method is one route's endpoint: FastAPI
    names the operation after it, and its docstring is the operation's description."""

    def __init__(self, dataplane: PredictorDataPlane):
        self.dataplane = dataplane

    async def repository_closed(self, rest: str) -> JSONResponse:
        return JSONResponse({"error": "the model-repository extension is not served"}, 404)

    async def infer_any_version(self, model_name: str, request: Request) -> Response:
        """V2 inference: JSON, or the binary-data extension with raw image bytes."""
        return await self._infer(model_name, None, request)

    async def infer_version(
        self, model_name: str, model_version: str, request: Request
    ) -> Response:
        """V2 inference on the version served (the one `versions` lists); others: 404."""
        return await self._infer(model_name, model_version, request)

    async def model_metadata(self, model_name: str) -> JSONResponse:
        """Inputs and outputs, and which model file is live (`versions`, `parameters`)."""
        return JSONResponse(kserve_glue.model_from_registry(self.dataplane, model_name).metadata())

    async def version_metadata(self, model_name: str, model_version: str) -> JSONResponse:
        """The metadata, if `model_version` is the version served."""
        return JSONResponse(self.dataplane.model_serving(model_name, model_version).metadata())

    async def version_ready(self, model_name: str, model_version: str) -> JSONResponse:
        """Ready, if `model_version` is the version served and loaded."""
        await self._served(model_name, model_version)
        return JSONResponse({"name": model_name, "ready": True})

    async def server_ready(self) -> JSONResponse:
        """Ready only when every registered model is loaded and warmed up."""
        waiting = await self.dataplane.not_ready()
        if waiting:  # answered, not raised: no traceback a probe
            return JSONResponse({"ready": False, "error": f"not ready: {waiting}"}, 503)
        return JSONResponse({"ready": True})

    async def health(self) -> dict:
        """The course's health check: the process answers (no token needed behind the proxy)."""
        return {"status": "OK"}

    async def upload(self, file: UploadFile = File(...)) -> dict:  # noqa: B008 (FastAPI's idiom)
        """The course's route: one image file as multipart part `file`."""
        model = await self._served(MODEL_NAME)
        values = await model.classify(ImageBatch(images=(await file.read(),)))
        return codec.prediction_rows(values)[0]

    async def _served(self, model_name: str, version: str | None = None) -> CatsDogsOtherModel:
        """The model, ready, and serving `version` if one is named."""
        ready = await kserve_glue.model_ready(  # ModelNotFound -> 404
            self.dataplane, model_name, disable_predictor_health_check=True
        )
        if not ready:
            raise ModelNotReady(model_name)
        return self.dataplane.model_serving(model_name, version)

    async def _infer(self, model_name: str, version: str | None, request: Request) -> Response:
        model = await self._served(model_name, version)
        body = await request.body()
        header_length = request.headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        # What its JSON parses into, bounded and taken from the memory budget before parsing.
        with model.budget.take(codec.json_cost(body, header_length, model.max_images)):
            # Parsing a body of many megabytes takes tens of milliseconds: off the event loop.
            infer_request = await asyncio.get_running_loop().run_in_executor(
                None, codec.infer_request_from_rest, body, header_length, model_name
            )
            infer_request.model_version = version
            answer = await kserve_glue.infer(
                self.dataplane, model_name, infer_request, dict(request.headers)
            )
        sent = outputs.to_rest(answer)
        if sent.json_length is None:
            return Response(sent.payload, media_type="application/json")
        return Response(
            sent.payload,
            media_type="application/octet-stream",
            headers={INFERENCE_CONTENT_LENGTH_HEADER: str(sent.json_length)},
        )


FROM_ANNOTATION = Default(None)  # FastAPI's own default: the endpoint's return annotation
GET, POST = ("GET",), ("POST",)


@dataclass(frozen=True)
class Route:
    """One route: its methods, its path, the name of the `Endpoints` method that answers it,
    and what the OpenAPI document says of it (FastAPI's `tags`, `response_model`,
    `include_in_schema`)."""

    methods: tuple[str, ...]
    path: str
    endpoint: str
    tag: str | None = None
    response_model: Any = field(default_factory=lambda: FROM_ANNOTATION)
    include_in_schema: bool = True


# fmt: off
ROUTES = (
    Route(ALL_METHODS, REPOSITORY_PREFIX + "/{rest:path}", "repository_closed",
          include_in_schema=False),
    Route(POST, "/v2/models/{model_name}/infer", "infer_any_version", "V2", response_model=None),
    Route(POST, "/v2/models/{model_name}/versions/{model_version}/infer", "infer_version", "V2",
          response_model=None),
    Route(GET, "/v2/models/{model_name}", "model_metadata", "V2"),
    Route(GET, "/v2/models/{model_name}/versions/{model_version}", "version_metadata", "V2"),
    Route(GET, "/v2/models/{model_name}/versions/{model_version}/ready", "version_ready", "V2"),
    Route(GET, "/v2/health/ready", "server_ready", "V2"),
    Route(GET, "/health", "health", "course"),
    Route(POST, "/upload", "upload", "course", response_model=Prediction),
)
# fmt: on


def install_routes(app: FastAPI, dataplane: PredictorDataPlane, token_url: str = "") -> None:
    """Add the predictor's routes (`ROUTES`), the docs pages and the described OpenAPI document;
    call before KServe registers its own. `token_url`: the issuer's token endpoint, offered by
    `/docs` for OAuth2 client credentials."""
    app.openapi = openapi.Described(app.openapi, token_url)  # type: ignore[method-assign]
    install_docs(app, token_url)
    endpoints = Endpoints(dataplane)
    for route in ROUTES:
        app.add_api_route(
            route.path,
            getattr(endpoints, route.endpoint),
            methods=list(route.methods),
            tags=[route.tag] if route.tag else None,
            response_model=route.response_model,
            include_in_schema=route.include_in_schema,
        )


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
