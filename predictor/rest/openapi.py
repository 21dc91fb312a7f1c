"""The OpenAPI document `/docs` and `/redoc` show: the operations a user can call, how to
authorize them, and what they answer.

FastAPI builds the document from the routes, KServe's included; three things it cannot know are
added here, once, on the document FastAPI caches:
- the routes no user can call leave it: the model-repository extension (closed, rest/routes.py),
  `/metrics` (the proxy serves it to monitoring only) and V1 `:explain` (no explainer here);
- the bearer scheme the auth proxy checks (`components.securitySchemes`), on every operation the
  proxy guards, so Swagger UI shows **Authorize** and "Try it out" sends the token; with a
  token URL, OAuth2 client credentials too. The probes the proxy passes without a token say
  `security: []`;
- request and answer examples, and the error shapes: the predictor's `{"error": ...}` and the
  proxy's RFC 6750 refusals (`{"error": "invalid_token", "error_description": ...}`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..contract import LABELS, MODEL_NAME, input_types, output_types

SCOPE = "get::prediction"  # the contract's scope; the proxy's OAUTH2_SCOPE default
REPOSITORY_PREFIX = "/v2/repository"
# What the auth proxy passes without a token (its PUBLIC_PATHS default, templated).
PUBLIC_OPERATIONS = {
    "/health",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{model_name}/ready",
}
# A 1x1 PNG, base64: the smallest image the V2 example can carry.
TINY_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mM4UWEDAAOIAX3S1mMyAAAAAElFTkSuQmCC"
)
PREDICTION = {"prediction": "Cat", "values": [0.9998, 0.0002, 0.0007]}

ERROR_SCHEMAS = {
    "Error": {
        "type": "object",
        "description": "The predictor's error answer (the V2 protocol's shape).",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    },
    "Refusal": {
        "type": "object",
        "description": "The auth proxy's refusal (RFC 6750); `WWW-Authenticate: Bearer` too.",
        "properties": {
            "error": {"type": "string", "examples": ["invalid_token"]},
            "error_description": {"type": "string"},
            "scope": {"type": "string"},
        },
        "required": ["error", "error_description"],
    },
}


def _answer(description: str, schema: str, example: dict) -> dict:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": f"#/components/schemas/{schema}"},
                "example": example,
            }
        },
    }


REFUSALS = {
    "401": _answer(
        "No token, or a token that is expired, badly signed or for another audience "
        "(the auth proxy).",
        "Refusal",
        {
            "error": "unauthorized",
            "error_description": "a bearer token is required: Authorization: Bearer <token>",
        },
    ),
    "403": _answer(
        f"A valid token without the scope `{SCOPE}` (the auth proxy).",
        "Refusal",
        {
            "error": "insufficient_scope",
            "error_description": f"the token lacks the scope {SCOPE}",
            "scope": SCOPE,
        },
    ),
}
ERRORS = {
    "400": _answer(
        "Not an image, or a malformed request.",
        "Error",
        {"error": "cannot decode image 0: not an image file"},
    ),
    "404": _answer(
        "No such model, or another version.",
        "Error",
        {"error": "Model with name other does not exist."},
    ),
    "413": _answer(
        "Over a size limit (bytes, pixels, images per request).",
        "Error",
        {"error": "image 0 is 12000000 bytes, over the limit of 10485760"},
    ),
    "422": _answer(
        "A required part or parameter is missing.",
        "Error",
        {"error": "invalid request: body.file: Field required"},
    ),
    "503": _answer(
        "The model is still loading.",
        "Error",
        {"error": f"Model with name {MODEL_NAME} is not ready."},
    ),
}
V2_REQUEST = {
    "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [TINY_PNG]}],
}
V2_ANSWER = {
    "model_name": MODEL_NAME,
    "id": "5d4f…",
    "outputs": [
        {"name": "prediction", "datatype": "BYTES", "shape": [1], "data": ["Cat"]},
        {"name": "values", "datatype": "FP32", "shape": [1, 3], "data": PREDICTION["values"]},
    ],
}
METADATA = {
    "name": MODEL_NAME,
    "versions": ["1"],
    "platform": "tensorflow_keras",
    "inputs": input_types(),
    "outputs": output_types(),
    "parameters": {"model": "the built-in demo model", "runtime": "openvino"},
}


def _json(example: Any, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"example": example}}}


def _examples() -> dict[tuple[str, str], dict]:
    """(path, method) -> what to merge into that operation."""
    labels = ", ".join(LABELS)
    infer = {
        "description": (
            "V2 inference. JSON (below: one base64 PNG), or the binary-data extension: "
            "`Inference-Header-Content-Length` + raw image bytes. Outputs `prediction` "
            f"({labels}) and `values` (three independent sigmoids)."
        ),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"example": V2_REQUEST},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {"200": _json(V2_ANSWER), **ERRORS},
    }
    ready = {
        "200": _json({"ready": True}),
        "503": _json({"ready": False, "error": "not ready: no model is loaded"}, "Not ready yet"),
    }
    return {
        ("/upload", "post"): {
            "description": (
                f"The course's route: one image file as multipart part `file` (PNG, JPEG, ...). "
                f"Answers the label ({labels}) and the three sigmoid values."
            ),
            "responses": {"200": _json(PREDICTION), **without(ERRORS, "404")},
        },
        ("/v2/models/{model_name}/infer", "post"): infer,
        ("/v2/models/{model_name}/versions/{model_version}/infer", "post"): infer,
        ("/v2/models/{model_name}", "get"): {"responses": {"200": _json(METADATA), **ERRORS}},
        ("/health", "get"): {"responses": {"200": _json({"status": "OK"})}},
        ("/v2/health/live", "get"): {"responses": {"200": _json({"live": True})}},
        ("/v2/health/ready", "get"): {"responses": ready},
        ("/v2/models/{model_name}/ready", "get"): {
            "responses": {"200": _json({"name": MODEL_NAME, "ready": True}), **ERRORS}
        },
    }


def without(answers: dict, *statuses: str) -> dict:
    return {status: answer for status, answer in answers.items() if status not in statuses}


def security_schemes(token_url: str) -> dict:
    schemes: dict[str, dict] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": f"An access token from the issuer, with the scope `{SCOPE}`; "
            "paste it without the word Bearer.",
        }
    }
    if token_url:
        schemes["oauth2"] = {
            "type": "oauth2",
            "description": "Client credentials: the issuer's token endpoint gives the token.",
            "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": {SCOPE: "predict"}}},
        }
    return schemes


def uncallable(path: str) -> bool:
    """Closed here (the repository extension), never forwarded by the proxy (`/metrics`: on
    its admin port, for monitoring), or not served by this model (`:explain`)."""
    return path.startswith(REPOSITORY_PREFIX) or path == "/metrics" or path.endswith(":explain")


def describe(document: dict, token_url: str = "") -> dict:
    """The document, edited in place (FastAPI caches it: done once) and returned."""
    document["info"] = {
        "title": f"{MODEL_NAME} classifier",
        # The API's version, not KServe's (which FastAPI's default would publish to anyone).
        "version": "v2",
        "description": (
            f"Classifies an image as {', '.join(LABELS)}. Click **Authorize** and paste an "
            f"access token with the scope `{SCOPE}`; the probes need none."
        ),
    }
    paths = document.setdefault("paths", {})
    for path in [p for p in paths if uncallable(p)]:
        del paths[path]
    components = document.setdefault("components", {})
    components.setdefault("schemas", {}).update(ERROR_SCHEMAS)
    components["securitySchemes"] = security_schemes(token_url)
    guarded: list[dict[str, list[str]]] = [{"bearer": []}]
    if token_url:
        guarded.append({"oauth2": [SCOPE]})
    examples = _examples()
    for path, operations in paths.items():
        for method, operation in operations.items():
            extra = examples.get((path, method), {})
            operation.update({k: v for k, v in extra.items() if k != "responses"})
            public = path in PUBLIC_OPERATIONS
            # A new dict: operations may share FastAPI's, and each gets its own answers.
            operation["responses"] = {
                **operation.get("responses", {}),
                **extra.get("responses", {}),
                **({} if public else REFUSALS),
            }
            operation["security"] = [] if public else guarded
    return document


class Described:
    """FastAPI's `app.openapi` hook: the document FastAPI generates, described (`describe`)
    at the first call and the same dict after. `generate` is FastAPI's own `app.openapi`."""

    def __init__(self, generate: Callable[[], dict], token_url: str = ""):
        self._generate, self._token_url = generate, token_url
        self._document: dict | None = None

    def __call__(self) -> dict:
        if self._document is None:
            self._document = describe(self._generate(), self._token_url)
        return self._document
