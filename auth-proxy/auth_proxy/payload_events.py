"""The payload log's events, as KServe's logger writes them (kserve/pkg/logger: handler.go,
worker.go): one CloudEvent per inference request and one per its answer, sent in binary content
mode (the attributes as `ce-` headers, the body as it passed as the HTTP body).

Pure functions of what the proxy saw: which calls are logged, the id a request and its answer
share, and the event (built and written with the CloudEvents SDK). Where KServe's agent differs
from what is right for this proxy, it is said here and in docs/payload-logging.md: the answer
carries its own content type (the agent labels it with the request's), and a gRPC call is
logged as its protobuf message (the agent logs HTTP only)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from .route_labels import GRPC_SERVICE, rest_route

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
# KServe's extension attributes (worker.go): the agent's flags, taken from the pod's labels.
INFERENCE_SERVICE = "cats-dogs-other"  # the Deployment's and the InferenceService's name
COMPONENT = "predictor"
ENDPOINT = ""  # the pod label `endpoint`, which KServe no longer sets: the agent sends ""
NO_METADATA = "{}"  # `metadata`: the headers the ISVC's logger.metadataHeaders names; none here

# The REST routes whose calls are inferences (the rest: probes, metadata, documentation).
INFERENCE_ROUTES = frozenset(
    {
        "/v2/models/{model}/infer",
        "/v2/models/{model}/versions/{version}/infer",
        "/v1/models/{model}:predict",
        "/upload",
    }
)
GRPC_INFER = GRPC_SERVICE + "ModelInfer"
# A gRPC message as data: the IETF draft's media type for protobuf, naming the message type
# (the V2 protocol's grpc_predict_v2.proto, package `inference`).
GRPC_REQUEST_TYPE = "application/protobuf; proto=inference.ModelInferRequest"
GRPC_RESPONSE_TYPE = "application/protobuf; proto=inference.ModelInferResponse"
UNTYPED = "application/octet-stream"  # a body sent without Content-Type (RFC 9110 §8.3)
# The longest Content-Type an event keeps: the client writes it (up to aiohttp's 8 KiB header
# field), and the queue charges each event a fixed EVENT_OVERHEAD for its attributes.
MOST_CONTENT_TYPE = 255


def logged_content_type(value: str | None) -> str:
    """The body's type as the event carries it: a client's over MOST_CONTENT_TYPE characters
    (or none) is `application/octet-stream`, so the queue's byte bound holds."""
    if not value or len(value) > MOST_CONTENT_TYPE:
        return UNTYPED
    return value


ID_HEADER = "ce-id"  # KServe's: the caller's id for the request, kept by its events
_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no space: a CloudEvents id


def logged_rest(method: str, path: str) -> bool:
    """Whether a REST request (that passed authentication) is an inference to log."""
    return method == "POST" and rest_route(path).route in INFERENCE_ROUTES


def logged_grpc(method: str) -> bool:
    return method == GRPC_INFER


def event_id(given: str | None) -> str:
    """The id a request's events share: the caller's `Ce-Id` as KServe takes it, when it is one
    (printable ASCII, at most 128 characters), else a new UUID."""
    if given is not None and _ID.fullmatch(given):
        return given
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Origin:
    """Who sends the events: KServe's `source` (the pod's name) and its extension attributes."""

    source: str
    namespace: str
    inference_service: str = INFERENCE_SERVICE
    component: str = COMPONENT
    endpoint: str = ENDPOINT


@dataclass(frozen=True)
class Payload:
    """One body as it passed: the request's or the answer's, in the pieces it came in."""

    type: str  # REQUEST or RESPONSE
    id: str
    content_type: str
    pieces: tuple[bytes, ...]
    occurred: datetime  # the request's arrival, or the answer's end (KServe's event time)

    @property
    def size(self) -> int:
        return sum(map(len, self.pieces))


def cloud_event(payload: Payload, origin: Origin, recorded: datetime) -> CloudEvent:
    """The event KServe's agent would send for `payload`; `recorded`: when it is sent."""
    attributes = {
        "specversion": "1.0",
        "id": payload.id,
        "type": payload.type,
        "source": origin.source,
        "time": payload.occurred.isoformat(),
        "datacontenttype": payload.content_type,
        "recordedtime": recorded.isoformat(),
        "inferenceservicename": origin.inference_service,
        "namespace": origin.namespace,
        "component": origin.component,
        "endpoint": origin.endpoint,
        "metadata": NO_METADATA,
    }
    return CloudEvent(attributes, payload.pieces)


def binary_message(event: CloudEvent) -> tuple[dict[str, str], bytes | tuple[bytes, ...]]:
    """The HTTP headers and body of `event` in binary content mode. A body of one piece (or
    none) is that piece's bytes; one of several is left in its pieces, for the sender to stream:
    joined, it would be a second copy of the largest bodies, outside the queue's bound."""
    headers, body = to_binary(event, data_marshaller=_as_sent)
    return headers, cast("bytes | tuple[bytes, ...]", body)


def _as_sent(pieces: tuple[bytes, ...]) -> bytes | tuple[bytes, ...]:
    if len(pieces) > 1:
        return pieces
    return pieces[0] if pieces else b""
