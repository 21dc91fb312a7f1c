"""Server readiness follows the models on REST: with no model registered (the state an unload
left behind before the repository extension was closed) `/v2/health/ready` is false, as gRPC's
`ServerReady` is. In process: the predictor's own routes on KServe's data plane."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kserve.model_repository import ModelRepository

from predictor.protocol.dataplane import PredictorDataPlane
from predictor.rest.routes import install_routes

pytestmark = pytest.mark.unit


def test_no_model_is_not_ready():
    app = FastAPI()
    install_routes(app, PredictorDataPlane(model_registry=ModelRepository()))
    with TestClient(app) as client:
        answer = client.get("/v2/health/ready")
        assert answer.status_code == 503
        assert answer.json() == {"ready": False, "error": "not ready: no model is loaded"}
        assert client.post("/v2/repository/models/cats-dogs-other/unload").status_code == 404
