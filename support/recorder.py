"""A recording gRPC upstream: answers every method with an empty message and keeps what each
call carried (method, metadata, the deadline it was given), for tests that must see what the
proxy forwarded."""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass, field

import grpc

from support.servers import free_port


@dataclass
class Call:
    method: str
    metadata: list[tuple[str, str | bytes]]
    time_remaining: float | None
    size: int


@dataclass
class GrpcRecorder:
    port: int = field(default_factory=free_port)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self):
        recorder = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                def answer(request: bytes, context) -> bytes:
                    recorder.calls.append(
                        Call(
                            details.method,
                            list(context.invocation_metadata()),
                            context.time_remaining(),
                            len(request),
                        )
                    )
                    return b""

                return grpc.unary_unary_rpc_method_handler(answer)

        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        self.server.add_generic_rpc_handlers((Handler(),))
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def last(self) -> Call:
        assert self.calls, "nothing reached the upstream"
        return self.calls[-1]

    def stop(self) -> None:
        self.server.stop(0)
