"""Server readiness follows the models, answered once by the data plane for both protocols: with
no model registered (the state an unload left behind before the repository extension was
closed), or one still loading, REST `/v2/health/ready` is 503 and gRPC `ServerReady` false; once
every model is ready, both say ready. In process: the predictor's own routes and servicer on
KServe's data plane."""

from __future__ import annotations

import asyncio

import kserve
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kserve.model_repository import ModelRepository
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from predictor.protocol.dataplane import PredictorDataPlane
from predictor.protocol.grpc_service import PredictorServicer
from predictor.rest.routes import install_routes

pytestmark = pytest.mark.unit


def dataplane_with(*models: kserve.Model) -> PredictorDataPlane:
    registry = ModelRepository()
    for model in models:
        registry.update(model)
    return PredictorDataPlane(model_registry=registry)


def model(name: str, ready: bool) -> kserve.Model:
    made = kserve.Model(name)
    made.ready = ready
    return made


def grpc_ready(dataplane: PredictorDataPlane) -> bool:
    servicer = PredictorServicer(dataplane, model_repository_extension=None)
    answer = asyncio.run(servicer.ServerReady(pb.ServerReadyRequest(), context=None))
    return answer.ready


def rest_ready(dataplane: PredictorDataPlane) -> tuple[int, dict]:
    app = FastAPI()
    install_routes(app, dataplane)
    with TestClient(app) as client:
        answer = client.get("/v2/health/ready")
        return answer.status_code, answer.json()


def test_no_model_is_not_ready():
    app = FastAPI()
    install_routes(app, PredictorDataPlane(model_registry=ModelRepository()))
    with TestClient(app) as client:
        answer = client.get("/v2/health/ready")
        assert answer.status_code == 503
        assert answer.json() == {"ready": False, "error": "not ready: no model is loaded"}
        assert client.post("/v2/repository/models/cats-dogs-other/unload").status_code == 404


@pytest.mark.parametrize(
    ("models", "ready", "rest"),
    [
        ((), False, (503, {"ready": False, "error": "not ready: no model is loaded"})),
        ((("a", False),), False, (503, {"ready": False, "error": "not ready: a"})),
        ((("a", True), ("b", False)), False, (503, {"ready": False, "error": "not ready: b"})),
        ((("a", False), ("b", False)), False, (503, {"ready": False, "error": "not ready: a, b"})),
        ((("a", True),), True, (200, {"ready": True})),
        ((("a", True), ("b", True)), True, (200, {"ready": True})),
    ],
    ids=["none", "loading", "one of two loading", "two loading", "ready", "two ready"],
)
def test_rest_and_grpc_give_the_data_planes_one_answer(models, ready, rest):
    dataplane = dataplane_with(*(model(name, state) for name, state in models))
    assert asyncio.run(dataplane.ready()) is ready
    assert grpc_ready(dataplane) is ready
    assert rest_ready(dataplane) == rest
