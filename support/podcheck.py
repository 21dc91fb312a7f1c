"""The checks every running pod must pass, wherever it runs (the processes of `make serve` in
the tests, the images under Docker, a kind cluster): through the proxy's REST and gRPC ports,
the probe paths answer without a token; a protected route and an anonymous upload are refused;
the course's cat photo, uploaded with a token over REST and sent to `ModelInfer` over gRPC
with one, comes back `Cat`; gRPC's `ServerReady` needs no token and `ModelMetadata` does."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import httpx
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from auth_proxy.public_paths import DEFAULT_PUBLIC_PATHS as PUBLIC

from .clients import MODEL, grpc_image_request, grpc_stub, grpc_values
from .images import CAT


def check_pod(rest: str, grpc_target: str, token: str, say: Callable[[str], None] = print) -> None:
    """Raise AssertionError naming the first check that fails; `say` each that passes."""
    cat = CAT.read_bytes()
    for path in PUBLIC:
        answer = httpx.get(rest + path, timeout=10)
        assert answer.status_code == 200, f"GET {path} without a token: {answer.status_code}"
    say(f"probe paths without a token: {', '.join(PUBLIC)} -> 200")
    assert httpx.get(f"{rest}/v2/models/{MODEL}", timeout=10).status_code == 401
    refused = httpx.post(f"{rest}/upload", files={"file": ("cat.png", cat)}, timeout=60)
    assert refused.status_code == 401, f"anonymous upload: {refused.status_code}"
    say("metadata and upload without a token -> 401")
    upload = httpx.post(
        f"{rest}/upload",
        files={"file": ("cat.png", cat)},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert upload.status_code == 200, f"authenticated upload: {upload.status_code} {upload.text}"
    assert upload.json()["prediction"] == "Cat", upload.text
    say(f"POST /upload with a token -> {upload.json()}")

    bearer = [("authorization", f"Bearer {token}")]
    channel, stub = grpc_stub(grpc_target)
    with channel:
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
        try:
            stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=10)
            raise AssertionError("gRPC ModelMetadata without a token was answered")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.code()
        metadata = stub.ModelMetadata(
            pb.ModelMetadataRequest(name=MODEL), metadata=bearer, timeout=10
        )
        assert metadata.name == MODEL
        answer = stub.ModelInfer(grpc_image_request([cat], raw=False), metadata=bearer, timeout=60)
        labels, _ = grpc_values(answer)
        assert labels == ["Cat"], labels
    say("gRPC: ServerReady without a token, ModelMetadata refused without one, ModelInfer -> Cat")
