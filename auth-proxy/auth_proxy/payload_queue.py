"""The payload log's memory: a queue bounded in bytes and in events, the copies of bodies as
they stream into it, and when dropping starts and stops. No I/O: the sender is
payload_log.py's.

A body is copied by reference, piece by piece, as the proxy forwards it (`BodyCopy`): each
piece takes its bytes from the queue's room as it arrives, so what the log holds (bodies still
streaming, queued, being sent) is never more than the queue's capacity, which comes out of the
proxy's memory budget (`budget.plan_memory`). A piece that finds no room ends the copy: the event
is dropped and counted (`queue_full`), never waited for, and the request goes on as if nothing
were logged. A body larger than the whole queue is not copied at all (`too_large`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from .metrics import PAYLOAD_LOG_QUEUE_BYTES
from .payload_events import Payload

# What an event costs besides its body, counted against the queue's bytes: its objects, its
# headers (a dozen ce- attributes) and the HTTP request that carries it. So the bound holds
# for events of empty bodies too.
EVENT_OVERHEAD = 1024


class PayloadQueue:
    """Events waiting for the sender, and the bytes the log holds, at most `capacity` bytes
    and `events` events. One event loop's: not locked. `dropped(reason)` is told of each
    event not logged."""

    def __init__(self, capacity: int, events: int, dropped: Callable[[str], None]):
        self.capacity = capacity
        self.held = 0
        self.dropped = dropped
        self._events: asyncio.Queue[Payload] = asyncio.Queue(maxsize=events)
        PAYLOAD_LOG_QUEUE_BYTES.set(0)

    def reserve(self, size: int) -> bool:
        """Take `size` bytes if they fit now; never waits."""
        if self.held + size > self.capacity:
            return False
        self.held += size
        PAYLOAD_LOG_QUEUE_BYTES.set(self.held)
        return True

    def release(self, size: int) -> None:
        self.held -= size
        PAYLOAD_LOG_QUEUE_BYTES.set(self.held)

    def put(self, payload: Payload) -> bool:
        """Queue `payload`, whose bytes it already holds; False when the events are full."""
        try:
            self._events.put_nowait(payload)
        except asyncio.QueueFull:
            return False
        return True

    async def get(self) -> Payload:
        """The next event to send; its bytes stay held until the sender calls `sent`."""
        return await self._events.get()

    def sent(self, payload: Payload) -> None:
        """`payload` is sent (or failed): its bytes are free."""
        self.release(payload.size + EVENT_OVERHEAD)

    def waiting(self) -> int:
        return self._events.qsize()

    def copy(self, type: str, id: str, content_type: str, stamp_now: bool) -> BodyCopy:
        """A copy of one body as it passes. `stamp_now`: the event's time is now (a request
        arriving); else when the copy finishes (an answer's end), as KServe stamps them."""
        return BodyCopy(self, type, id, content_type, _now() if stamp_now else None)


def _now() -> datetime:
    return datetime.now(UTC)


class BodyCopy:
    """One body, copied by reference as its pieces pass (`add`), queued once whole (`finish`).
    A copy that is neither finished nor dropped gives its bytes back on `close`: a body that
    never completed (the client or the predictor broke off) is no event, and no drop."""

    def __init__(
        self, queue: PayloadQueue, type: str, id: str, content_type: str, occurred: datetime | None
    ):
        self.queue = queue
        self.type, self.id, self.content_type, self.occurred = type, id, content_type, occurred
        self.pieces: list[bytes] = []
        self.size = 0
        self.held = 0
        self.over = False  # dropped, or finished: nothing more to do
        self._take(EVENT_OVERHEAD)

    def add(self, piece: bytes) -> None:
        if self.over or not piece:
            return
        self.size += len(piece)
        if self.size + EVENT_OVERHEAD > self.queue.capacity:
            self._drop("too_large")
        elif self._take(len(piece)):
            self.pieces.append(piece)

    def finish(self) -> None:
        """The body is whole: queue it as an event."""
        if self.over:
            return
        payload = Payload(
            type=self.type,
            id=self.id,
            content_type=self.content_type,
            pieces=tuple(self.pieces),
            occurred=self.occurred or _now(),
        )
        if not self.queue.put(payload):
            self._drop("queue_full")
            return
        self.over, self.pieces, self.held = True, [], 0  # the queue's now

    def close(self) -> None:
        if not self.over:
            self.over = True
            self._give_back()

    def _take(self, size: int) -> bool:
        if not self.queue.reserve(size):
            self._drop("queue_full")
            return False
        self.held += size
        return True

    def _drop(self, reason: str) -> None:
        self.over = True
        self._give_back()
        self.queue.dropped(reason)

    def _give_back(self) -> None:
        self.queue.release(self.held)
        self.held, self.pieces = 0, []

    def __enter__(self) -> BodyCopy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class DropSpells:
    """When dropping starts and when it stops, so that each is one log line, not one per
    event: a spell starts with the first drop, and ends once `quiet_seconds` pass without
    one. The lines hold only counts and the fixed reason names: nothing a client wrote."""

    def __init__(self, quiet_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.quiet_seconds = quiet_seconds
        self._clock = clock
        self._last_drop: float | None = None
        self._counts: Counter[str] = Counter()

    def dropped(self, reason: str) -> str | None:
        """Note one drop; the line to log if it starts a spell."""
        starts = self._last_drop is None
        self._last_drop = self._clock()
        self._counts[reason] += 1
        if starts:
            return (
                f"payload log: dropping events ({reason}); counted in "
                "auth_proxy_payload_log_dropped_total until it stops"
            )
        return None

    def check(self) -> str | None:
        """The line to log if a spell has just ended."""
        if self._last_drop is None or self._clock() - self._last_drop < self.quiet_seconds:
            return None
        counts = ", ".join(f"{reason} {n}" for reason, n in sorted(self._counts.items()))
        line = (
            f"payload log: no events dropped for {self.quiet_seconds:g} s; "
            f"{self._counts.total()} were dropped ({counts})"
        )
        self._last_drop, self._counts = None, Counter()
        return line
