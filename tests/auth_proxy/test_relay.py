"""How the proxy relays answers that a well-behaved predictor rarely gives, but a slow or
overloaded one, or a client that hangs up, does: a metrics page that arrives in pieces or
breaks off, and a large answer whose client leaves half-way.

The upstream here is a real HTTP server (aiohttp, on loopback) that writes exactly these
answers; the predictor cannot be made to write a 32 MB answer or a page cut mid-way."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest
from aiohttp import web

from support.issuer import issuer_env
from support.servers import free_port, start_proxy

from .test_metrics import count, samples

PAGE_HEAD = b"# HELP up_like a first piece\n# TYPE up_like gauge\nup_like 1\n"
PAGE_TAIL = b"".join(b"filler_%d 1\n" % i for i in range(20_000))  # ~250 KB
BIG = 32 * 1024 * 1024


class OddUpstream:
    """An aiohttp server in its own thread answering the odd answers above."""

    def __init__(self) -> None:
        self.port = free_port()
        self.cut = False  # the next pages announce more than they send
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._serve, args=(started,), daemon=True).start()
        assert started.wait(10)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/metrics", self.page_in_pieces)
        app.router.add_get("/big", self.big)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        started.set()
        self.loop.run_forever()

    async def page_in_pieces(self, request: web.Request) -> web.StreamResponse:
        """A page in two pieces 0.3 s apart; when `cut`, it announces more than it sends."""
        response = web.StreamResponse(headers={"Content-Type": "text/plain; version=0.0.4"})
        if self.cut:
            response.content_length = len(PAGE_HEAD) + len(PAGE_TAIL) + 100
        await response.prepare(request)
        await response.write(PAGE_HEAD)
        await asyncio.sleep(0.3)
        await response.write(PAGE_TAIL)
        if self.cut:
            request.transport.close()  # type: ignore[union-attr]
            return response
        await response.write_eof()
        return response

    async def big(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = BIG
        await response.prepare(request)
        piece = b"x" * (1024 * 1024)
        for _ in range(BIG // len(piece)):
            await response.write(piece)
        await response.write_eof()
        return response

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def odd(issuer, tmp_path_factory):
    upstream = OddUpstream()
    process = start_proxy(
        tmp_path_factory.mktemp("relay"),
        **issuer_env(issuer),
        UPSTREAM_HTTP=f"http://127.0.0.1:{upstream.port}",
        UPSTREAM_GRPC=f"127.0.0.1:{free_port()}",
    )
    process.upstream = upstream  # type: ignore[attr-defined]
    yield process
    process.stop()
    upstream.stop()


def test_a_metrics_page_in_pieces_is_passed_on_whole(odd):
    answer = httpx.get(f"http://127.0.0.1:{odd.admin_port}/metrics/predictor", timeout=10)
    assert answer.status_code == 200
    assert answer.content == PAGE_HEAD + PAGE_TAIL


def test_a_metrics_page_that_breaks_off_is_503_not_half_a_page(odd):
    odd.upstream.cut = True
    try:
        answer = httpx.get(f"http://127.0.0.1:{odd.admin_port}/metrics/predictor", timeout=10)
    finally:
        odd.upstream.cut = False
    assert answer.status_code == 503
    assert "the predictor's metrics" in answer.text


def test_a_client_that_leaves_a_large_answer_half_read_is_499(odd, issuer):
    broken = ("auth_proxy_upstream_errors_total", (("door", "rest"), ("reason", "broken_answer")))
    before = samples(odd.admin_port)
    with socket.create_connection(("127.0.0.1", odd.http_port), timeout=10) as sock:
        sock.sendall(
            f"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {issuer.token()}\r\n\r\n".encode()
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    for _ in range(100):
        after = samples(odd.admin_port)
        if count(after, door="rest", route="other") > count(before, door="rest", route="other"):
            break
        time.sleep(0.1)
    for status, more in (("499", 1), ("200", 0)):
        labels = {"route": "other", "status": status}
        assert count(after, **labels) == count(before, **labels) + more, status
    assert after[broken] == before[broken]
