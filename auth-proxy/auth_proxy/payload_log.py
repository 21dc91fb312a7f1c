"""Payload logging as KServe's logger does it, in the proxy (which sits where KServe's agent
sits: in front of the model's container): each inference call that passed authentication is
sent to `PAYLOAD_LOG_URL` as a request event and a response event (payload_events.py).

Never on the requests' path: the ports only copy bodies by reference as they stream, into a
queue bounded in bytes and events (payload_queue.py); the events are built and POSTed by a few
sender tasks on their own aiohttp session, each send bounded by `PAYLOAD_LOG_TIMEOUT_SECONDS`.
What does not fit, or fails to send, is dropped and counted, never retried or waited for; one
line says when dropping starts and one when it stops. Off (no URL): nothing of this exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp

from .metrics import PAYLOAD_LOG_DROPPED, PAYLOAD_LOG_QUEUE_CAPACITY, PAYLOAD_LOG_SENT
from .payload_events import (
    GRPC_REQUEST_TYPE,
    GRPC_RESPONSE_TYPE,
    REQUEST,
    RESPONSE,
    Origin,
    Payload,
    binary_message,
    cloud_event,
    logged_content_type,
)
from .payload_queue import BodyCopy, DropSpells, PayloadQueue
from .settings import PayloadLog as PayloadLogSettings

logger = logging.getLogger(__name__)

# Sends at once: a receiver that answers in 5 ms takes ~800 events/s, four times the proxy's
# inference rate on a core; a slow one holds four connections, never more.
SENDERS = 4
SPELL_CHECK_SECONDS = 1.0
DRAIN_SECONDS = 2.0  # at shutdown, the queue's last events get this long to go
ANSWER_READ = 64 * 1024  # of the receiver's answer, read so the connection can be reused


def origin(namespace: str) -> Origin:
    """KServe's agent names the pod as the events' source (the pod's host name is its name)."""
    return Origin(source=socket.gethostname(), namespace=namespace)


def shown_url(url: str) -> str:
    """The receiver as a log line may name it: scheme, host and port (no path or query, which
    could carry a key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class PayloadLog:
    def __init__(self, settings: PayloadLogSettings, capacity: int, source: Origin):
        self.settings = settings
        self.origin = source
        self.queue = PayloadQueue(capacity, settings.queue_events, self._dropped)
        self.spells = DropSpells()
        self.requests = settings.mode in ("all", "request")
        self.responses = settings.mode in ("all", "response")
        self._task: asyncio.Task[None] | None = None
        self._sending = 0  # events being sent now
        self._failed_once = False
        PAYLOAD_LOG_QUEUE_CAPACITY.set(capacity)

    # The ports' side: copies of the bodies of one call, None where the mode skips them.

    def rest_request(self, id: str, content_type: str | None) -> BodyCopy | None:
        if not self.requests:
            return None
        return self.queue.copy(REQUEST, id, logged_content_type(content_type), stamp_now=True)

    def rest_response(self, id: str, content_type: str | None) -> BodyCopy | None:
        if not self.responses:
            return None
        return self.queue.copy(RESPONSE, id, logged_content_type(content_type), stamp_now=False)

    def grpc_request(self, id: str, message: bytes) -> None:
        if self.requests:
            self._whole(self.queue.copy(REQUEST, id, GRPC_REQUEST_TYPE, stamp_now=True), message)

    def grpc_response(self, id: str, message: bytes) -> None:
        if self.responses:
            self._whole(self.queue.copy(RESPONSE, id, GRPC_RESPONSE_TYPE, stamp_now=True), message)

    @staticmethod
    def _whole(copy: BodyCopy, body: bytes) -> None:
        with copy:
            copy.add(body)
            copy.finish()

    def _dropped(self, reason: str) -> None:
        PAYLOAD_LOG_DROPPED.labels(reason).inc()
        line = self.spells.dropped(reason)
        if line:
            logger.warning(line)

    # The sender's side.

    def start(self) -> None:
        logger.info(
            "payload log: %s events to %s, queue of %d KiB and %d events",
            self.settings.mode,
            shown_url(self.settings.url),
            self.queue.capacity // 1024,
            self.settings.queue_events,
        )
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        """Give what is queued `DRAIN_SECONDS` to go, then stop: what is still queued then, or
        being sent, is dropped and counted (`shutdown`)."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while self.queue.held and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _ in range(self.queue.waiting() + self._sending):
            PAYLOAD_LOG_DROPPED.labels("shutdown").inc()
        self._sending = 0

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        connector = aiohttp.TCPConnector(limit=SENDERS)
        # No cookies kept (a receiver's would be memory outside the queue, sent back each time).
        jar = aiohttp.DummyCookieJar()
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, cookie_jar=jar
        ) as session:
            senders = [asyncio.create_task(self._sender(session)) for _ in range(SENDERS)]
            try:
                while True:
                    await asyncio.sleep(SPELL_CHECK_SECONDS)
                    line = self.spells.check()
                    if line:
                        logger.info(line)
            finally:
                for sender in senders:
                    sender.cancel()
                await asyncio.gather(*senders, return_exceptions=True)

    async def _sender(self, session: aiohttp.ClientSession) -> None:
        while True:
            payload = await self.queue.get()
            self._sending += 1
            try:
                delivered = await self._send(session, payload)
            except Exception:  # a bug, not the receiver: the sender goes on, said once
                delivered = False
                if not self._failed_once:
                    self._failed_once = True
                    logger.exception("payload log: an event could not be sent")
            finally:
                self.queue.sent(payload)
                del payload  # its bytes go now, not when the next one comes
            self._sending -= 1  # not on cancellation: close() counts it
            if delivered:
                PAYLOAD_LOG_SENT.inc()
            else:
                self._dropped("send_failed")

    async def _send(self, session: aiohttp.ClientSession, payload: Payload) -> bool:
        """POST one event in binary content mode; whether the receiver took it (2xx)."""
        headers, body = binary_message(cloud_event(payload, self.origin, datetime.now(UTC)))
        data: bytes | AsyncIterator[bytes]
        if isinstance(body, bytes):
            data = body
        else:  # several pieces: streamed, never joined into a copy
            headers["Content-Length"] = str(payload.size)
            data = _pieces(body)
        try:
            # Never redirected: a 3xx would send the photos to a host the operator did not
            # name (or from https to http); it is a failed send, counted as one.
            async with session.post(
                self.settings.url, data=data, headers=headers, allow_redirects=False
            ) as answer:
                await answer.content.read(ANSWER_READ)
                return 200 <= answer.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False


async def _pieces(pieces: tuple[bytes, ...]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
