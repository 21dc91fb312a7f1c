"""The payload log's format and settings, pure: which calls are logged, the id a request and
its answer share, the CloudEvent KServe's logger would send (read back by the SDK as a receiver
reads it), and the variables that turn it on, refused by name without repeating a password."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from cloudevents.http import from_http

from auth_proxy import payload_events, payload_queue
from auth_proxy.payload_events import (
    GRPC_INFER,
    INFERENCE_ROUTES,
    REQUEST,
    RESPONSE,
    Origin,
    Payload,
    binary_message,
    cloud_event,
    event_id,
    logged_grpc,
    logged_rest,
)
from auth_proxy.public_paths import DEFAULT_PUBLIC_GRPC_METHODS, DEFAULT_PUBLIC_PATHS, DOCS_PATHS
from auth_proxy.route_labels import GRPC_SERVICE, REST_TEMPLATES, V2_INFERENCE_METHODS
from auth_proxy.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit

BASE = {"OAUTH2_ISSUER": "https://tenant.eu.auth0.com/", "OAUTH2_AUDIENCE": "https://api"}
WHEN = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
ORIGIN = Origin(source="cats-dogs-other-7d9f-abcde", namespace="ml")


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/cats-dogs-other/infer",
        "/v2/models/cats-dogs-other/versions/1/infer",
        "/v1/models/cats-dogs-other:predict",
        "/upload",
    ],
)
def test_inference_posts_are_logged(path):
    assert logged_rest("POST", path)
    assert not logged_rest("GET", path)


@pytest.mark.parametrize(
    "path",
    [
        *DEFAULT_PUBLIC_PATHS,
        *DOCS_PATHS,
        "/v2",
        "/v2/models/cats-dogs-other",
        "/v1/models/cats-dogs-other",
        "/v2/models/cats-dogs-other/infer/x",
        "/metrics",
        "/somewhere",
    ],
)
def test_probes_metadata_documentation_and_the_rest_are_not(path):
    assert not logged_rest("POST", path)
    assert not logged_rest("GET", path)


def test_the_inference_routes_are_the_proxys_own_templates():
    assert INFERENCE_ROUTES <= REST_TEMPLATES


def test_on_grpc_only_model_infer_is_logged():
    assert logged_grpc(GRPC_INFER)
    others = [GRPC_SERVICE + name for name in V2_INFERENCE_METHODS if name != "ModelInfer"]
    assert not any(map(logged_grpc, [*others, *DEFAULT_PUBLIC_GRPC_METHODS]))


def test_the_callers_ce_id_is_kept_else_a_uuid_is_made():
    assert event_id("req-42") == "req-42"
    for unusable in (None, "", "two words", "x" * 129, "caf\u00e9", "line\nbreak"):
        made = event_id(unusable)
        assert uuid.UUID(made).version == 4, unusable
    assert event_id(None) != event_id(None)


def test_the_event_is_kserves_in_binary_content_mode():
    payload = Payload(REQUEST, "req-42", "application/json", (b'{"inputs": []}',), WHEN)
    headers, body = binary_message(cloud_event(payload, ORIGIN, WHEN))
    assert body == b'{"inputs": []}'
    assert headers == {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "req-42",
        "ce-type": "org.kubeflow.serving.inference.request",
        "ce-source": "cats-dogs-other-7d9f-abcde",
        "ce-time": "2026-05-04T03:02:01+00:00",
        "ce-recordedtime": "2026-05-04T03:02:01+00:00",
        "ce-inferenceservicename": "cats-dogs-other",
        "ce-namespace": "ml",
        "ce-component": "predictor",
        "ce-endpoint": "",
        "ce-metadata": "{}",
    }


def test_a_receiver_reads_back_what_was_sent():
    data = bytes(range(256)) * 3
    payload = Payload(RESPONSE, "id-1", "application/octet-stream", (data,), WHEN)
    headers, body = binary_message(cloud_event(payload, ORIGIN, WHEN))
    event = from_http(headers, body, data_unmarshaller=lambda raw: raw)
    assert event.data == data
    assert event["type"] == RESPONSE and event["id"] == "id-1"
    assert event["datacontenttype"] == "application/octet-stream"
    assert event["namespace"] == "ml" and event["inferenceservicename"] == "cats-dogs-other"


def test_a_body_of_several_pieces_stays_in_its_pieces_and_one_piece_is_not_copied():
    pieces = (b"a" * 10, b"b" * 20)
    _, body = binary_message(cloud_event(Payload(REQUEST, "i", "x/y", pieces, WHEN), ORIGIN, WHEN))
    assert body == pieces
    one = b"c" * 1000
    _, body = binary_message(cloud_event(Payload(REQUEST, "i", "x/y", (one,), WHEN), ORIGIN, WHEN))
    assert body is one
    _, body = binary_message(cloud_event(Payload(REQUEST, "i", "x/y", (), WHEN), ORIGIN, WHEN))
    assert body == b""


def test_off_unless_a_url_is_set():
    assert load_settings(BASE).payload_log is None
    assert load_settings({**BASE, "PAYLOAD_LOG_MODE": "request"}).payload_log is None


def test_the_settings_of_the_payload_log():
    settings = load_settings(
        {
            **BASE,
            "PAYLOAD_LOG_URL": "http://trustyai-service.ml.svc.cluster.local",
            "PAYLOAD_LOG_MODE": "Response",
            "PAYLOAD_LOG_QUEUE_BYTES": "1048576",
            "POD_NAMESPACE": "ml",
        }
    ).payload_log
    assert settings is not None
    assert settings.url == "http://trustyai-service.ml.svc.cluster.local"
    assert settings.mode == "response"
    assert settings.queue_bytes == 1048576
    assert settings.queue_events == 1000 and settings.timeout_seconds == 5
    assert settings.namespace == "ml"
    assert load_settings({**BASE, "PAYLOAD_LOG_URL": "https://r/"}).payload_log.mode == "all"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PAYLOAD_LOG_URL": "ftp://receiver/"}, "PAYLOAD_LOG_URL must be an http:// or https://"),
        ({"PAYLOAD_LOG_URL": "receiver:8080"}, "PAYLOAD_LOG_URL must be an http:// or https://"),
        ({"PAYLOAD_LOG_URL": "http:///path"}, "PAYLOAD_LOG_URL must name a host"),
        ({"PAYLOAD_LOG_URL": "http://r:eighty/"}, "PAYLOAD_LOG_URL is not a URL"),
        ({"PAYLOAD_LOG_MODE": "everything"}, "PAYLOAD_LOG_MODE must be one of all, request,"),
        ({"PAYLOAD_LOG_QUEUE_BYTES": "-1"}, "PAYLOAD_LOG_QUEUE_BYTES must be at least 0"),
        ({"PAYLOAD_LOG_QUEUE_EVENTS": "0"}, "PAYLOAD_LOG_QUEUE_EVENTS must be greater than 0"),
        ({"PAYLOAD_LOG_TIMEOUT_SECONDS": "inf"}, "must be a finite number"),
    ],
)
def test_bad_values_are_refused_by_name(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({**BASE, "PAYLOAD_LOG_URL": "http://receiver/", **env})


@pytest.mark.parametrize(
    "url",
    ["http://user:s3cret-pass@receiver/", "https://s3cret-pass@receiver/", "ftp://s3cret-pass/"],
)
def test_a_refused_url_is_never_repeated(url):
    with pytest.raises(SettingsError) as refused:
        load_settings({**BASE, "PAYLOAD_LOG_URL": url})
    assert str(refused.value).startswith("PAYLOAD_LOG_URL ")
    assert "s3cret" not in str(refused.value)


def test_a_clients_content_type_is_kept_only_when_short_so_the_queues_bound_holds():
    """The client writes the Content-Type (up to 8 KiB); the queue charges an event a fixed
    1 KiB beside its body, so a longer type is logged as octet-stream."""
    assert payload_events.logged_content_type("application/json") == "application/json"
    assert payload_events.logged_content_type(None) == payload_events.UNTYPED
    assert payload_events.logged_content_type("") == payload_events.UNTYPED
    long = "application/json; x=" + "a" * 8000
    assert payload_events.logged_content_type(long) == "application/octet-stream"
    assert payload_events.MOST_CONTENT_TYPE < payload_queue.EVENT_OVERHEAD // 2
