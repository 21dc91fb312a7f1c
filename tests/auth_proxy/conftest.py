"""Fixtures: an echoing upstream, and real proxy processes in front of the echo server, of
recorders, or of the predictor with the OIDC provider's tokens (the issuer, the provider and
the proxy in front of the predictor are in tests/conftest.py)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support.issuer import issuer_env
from support.servers import free_port, start_proxy


class EchoHandler(BaseHTTPRequestHandler):
    """Answers 200 to any method and path with what it received, and adds the request line's
    method and target to its server's `received`; `/slow` first sleeps 3 s; `/big` streams
    5 MB."""

    protocol_version = "HTTP/1.1"
    server: EchoServer

    def _answer(self):
        # The target as the request line wrote it (`self.path` has leading slashes collapsed).
        self.server.received.append((self.command, self.requestline.split(" ")[1]))
        body = self._read_body()
        if self.path.startswith("/slow"):
            time.sleep(3)
        if self.path.startswith("/big"):
            data = bytes(range(256)) * (5 * 4096)
            content_type = "application/octet-stream"
        else:
            echo = {
                "method": self.command,
                "path": self.path,
                "headers": [[name.lower(), value] for name, value in self.headers.items()],
                "body_length": len(body),
            }
            data, content_type = json.dumps(echo).encode(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Upstream", "echo")
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


class EchoServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), EchoHandler)
        self.received: list[tuple[str, str]] = []  # (method, target) of each request, in order
        self.port = self.server_address[1]


@pytest.fixture(scope="module")
def echo_server():
    server = EchoServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def echo_url(echo_server):
    return f"http://127.0.0.1:{echo_server.port}"


@pytest.fixture(scope="module")
def echo_proxy(issuer, echo_url, tmp_path_factory):
    """The proxy in front of the echo server, a 1 s upstream timeout and a 1 MiB body limit;
    its gRPC upstream is a closed port (the predictor is down)."""
    process = start_proxy(
        tmp_path_factory.mktemp("echo-proxy"),
        **issuer_env(issuer),
        UPSTREAM_HTTP=echo_url,
        UPSTREAM_GRPC=f"127.0.0.1:{free_port()}",
        UPSTREAM_TIMEOUT_SECONDS="1",
        MAX_BODY_BYTES=str(1024 * 1024),
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def grpc_recorder():
    from support.recorder import GrpcRecorder

    recorder = GrpcRecorder()
    yield recorder
    recorder.stop()


@pytest.fixture(scope="module")
def recording_proxy(issuer, echo_url, grpc_recorder, tmp_path_factory):
    """The proxy in front of recorders on both protocols (the echo server, the gRPC recorder),
    with short client timeouts, a 2 MiB body limit and no limit on refusal lines, for the
    hostile-client tests."""
    process = start_proxy(
        tmp_path_factory.mktemp("recording-proxy"),
        **issuer_env(issuer),
        UPSTREAM_HTTP=echo_url,
        UPSTREAM_GRPC=grpc_recorder.target,
        UPSTREAM_TIMEOUT_SECONDS="1.5",
        MAX_BODY_BYTES=str(2 * 1024 * 1024),
        CLIENT_IDLE_TIMEOUT_SECONDS="2",
        CLIENT_BODY_TIMEOUT_SECONDS="1",
        REFUSAL_LOG_LINES="100000",  # every refusal logged: the tests read the lines
    )
    yield process
    process.stop()
