"""The predictor's bad-input errors, each mapped to one HTTP status and one gRPC code.

They subclass KServe's `InvalidInput`, so any KServe code path that already turns that into a
400 / INVALID_ARGUMENT keeps working; `rest/routes.py` and `grpc_service.py` refine the mapping.
"""

from __future__ import annotations

from http import HTTPStatus

from grpc import StatusCode
from kserve.errors import InvalidInput


class BadRequest(InvalidInput):
    """The request cannot be served as sent. The message names the problem for the client."""

    http_status = HTTPStatus.BAD_REQUEST
    grpc_code = StatusCode.INVALID_ARGUMENT
    headers: dict[str, str] = {}  # noqa: RUF012  # read only: headers of the REST answer


class BadImage(BadRequest):
    """One image of the request cannot be decoded; `index` says which."""

    def __init__(self, index: int, problem: str):
        self.index = index
        self.problem = problem
        super().__init__(f"image {index}: {problem}")


class TooLarge(BadRequest):
    """A payload is over a configured limit (image bytes, pixels, images per request)."""

    http_status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    grpc_code = StatusCode.RESOURCE_EXHAUSTED


class ImageTooLarge(TooLarge, BadImage):
    """One image is over the size limit; `index` says which."""


class NoSuchVersion(BadRequest):
    """A request names a model version this server does not serve."""

    http_status = HTTPStatus.NOT_FOUND
    grpc_code = StatusCode.NOT_FOUND


class UnsupportedEncoding(BadRequest):
    """A request body in a content coding the server cannot decode."""

    http_status = HTTPStatus.UNSUPPORTED_MEDIA_TYPE


class OverBudget(BadRequest):
    """What a request needs does not fit in the memory budget now (memory.py): not the
    request's fault, and it may succeed shortly (429 with Retry-After / RESOURCE_EXHAUSTED)."""

    http_status = HTTPStatus.TOO_MANY_REQUESTS
    grpc_code = StatusCode.RESOURCE_EXHAUSTED
    headers = {"Retry-After": "1"}  # noqa: RUF012

    def __init__(self, needed: int, budget: int):
        self.needed, self.budget = needed, budget
        super().__init__(
            f"the server is at its memory budget ({budget} bytes): this request needs {needed} "
            "bytes more; try again shortly"
        )
