"""A real CloudEvents receiver on 127.0.0.1, for the payload log's tests and bench: an aiohttp
server on a thread of its own that parses each POST with the CloudEvents SDK (`from_http`, the
data kept as bytes) and records the event and the headers it came with. It can answer slowly,
not at all, or with an error status, as a receiver under strain does; and the proxy's metrics
page, read as numbers. `python -m support.event_receiver PORT [--hang]` runs one in a process
of its own (the bench's), until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
import time
from dataclasses import dataclass

import httpx
from aiohttp import web
from cloudevents.http import CloudEvent, from_http
from prometheus_client.parser import text_string_to_metric_families

from .ports import free_port


@dataclass(frozen=True)
class Received:
    event: CloudEvent
    headers: dict[str, str]  # as sent, names lower-cased


class EventReceiver:
    """`status`: what each POST is answered; `delay`: seconds before answering; `hang`: never
    answer (until `stop`). All three may change while it runs. `keep`: whether the events
    are kept (else only counted, in `posts`). `redirect`: a URL each POST is sent on to (307,
    which a client following it would POST the same body to)."""

    def __init__(
        self,
        status: int = 200,
        delay: float = 0.0,
        hang: bool = False,
        port: int | None = None,
        keep: bool = True,
        redirect: str | None = None,
    ):
        self.status, self.delay, self.hang, self.keep = status, delay, hang, keep
        self.redirect = redirect
        self.port = port or free_port()
        self.received: list[Received] = []
        self.posts = 0  # every POST that arrived, answered or not
        self._loop = asyncio.new_event_loop()
        self._released: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("the event receiver did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def events(self) -> list[CloudEvent]:
        return [r.event for r in self.received]

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        started.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._released = asyncio.Event()
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/{path:.*}", self._take)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _take(self, request: web.Request) -> web.Response:
        self.posts += 1
        assert self._released is not None
        body = await request.read()
        if self.hang:
            await self._released.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.redirect:
            return web.Response(status=307, headers={"Location": self.redirect})
        headers = {name.lower(): value for name, value in request.headers.items()}
        if self.status < 300:
            event = from_http(headers, body, data_unmarshaller=lambda data: data)
            if self.keep:
                self.received.append(Received(event, headers))
        return web.Response(status=self.status)

    def wait_for(self, count: int, timeout: float = 20) -> list[CloudEvent]:
        """The events, once at least `count` have arrived (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} events of {count}"
            time.sleep(0.02)
        return self.events

    def clear(self) -> None:
        self.received.clear()

    def stop(self) -> None:
        async def shut() -> None:
            assert self._released is not None and self._runner is not None
            self._released.set()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def metrics(admin_port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of the proxy's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=10).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(admin_port: int, name: str, **labels: str) -> float:
    """One sample of the proxy's /metrics (0 if absent)."""
    return metrics(admin_port).get((name, tuple(sorted(labels.items()))), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description="a CloudEvents receiver on 127.0.0.1")
    parser.add_argument("port", type=int)
    parser.add_argument("--hang", action="store_true", help="take events, never answer")
    args = parser.parse_args()
    receiver = EventReceiver(hang=args.hang, port=args.port, keep=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    receiver.stop()


if __name__ == "__main__":
    main()
