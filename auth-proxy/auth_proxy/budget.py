"""The bytes of admitted requests in flight, bounded by the container's memory.

On both ports a request takes what it will hold before it holds it: a REST body's declared length
(or the largest body, for one sent without a length), a gRPC message's size. Past the budget
the request is refused (429 with `Retry-After` / RESOURCE_EXHAUSTED; a REST request at once, a
gRPC call after waiting briefly for room to read), never buffered into an out-of-memory kill,
and a request gives back what it took however it ends (`Hold`).

A gRPC message costs the proxy `GRPC_COPIES` times its size (measured: three reads of 30 MiB
at once took the proxy from 62 to 301 MiB: gRPC's receive buffers, their joined copy, Python's
bytes, then the copy sent on). gRPC carries no length before its message, so a call takes room
for the largest message while it reads, then keeps what the size read needs. The largest
message the gRPC port accepts is sized so that two such reads fit in the budget (`MAX_BODY_BYTES`
if smaller): a 256 MiB container passes messages up to 24 MiB, enough for 32 images as FP32
tensors (19 MB). Reads on a pod's network take milliseconds; a call waits up to
`READ_PATIENCE_SECONDS` for room to read before it is refused.

The budget follows the container's limit (cgroup `memory.max`) unless `MEMORY_BUDGET_BYTES`
says otherwise: three quarters of what the limit leaves above the proxy's own ~64 MiB (the rest
is slack for what the budget does not count: connections, headers, the allocator's own).
With the payload log on, its queue's bytes come out of that budget (`plan_memory`): requests
keep the rest, so the two together never hold more than the container was sized for.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
from dataclasses import dataclass
from pathlib import Path

from .metrics import BUDGET_HELD

MiB = 1024 * 1024
# The proxy's own resident memory at rest (Python, aiohttp, gRPC, the key cache): measured 63 MiB.
BASELINE_BYTES = 64 * MiB
NO_LIMIT_BUDGET = 512 * MiB  # outside a container with a memory limit
SMALLEST_BUDGET = 16 * MiB
READ_PATIENCE_SECONDS = 2.0
GRPC_COPIES = 3
# When the last request holding memory gives back this much, the allocator's free pages go
# back to the system: not after each request (a trim walks the heap), once a burst is over.
LARGE_RELEASE = 4 * MiB
LARGEST_READS_AT_ONCE = 2


def largest_grpc_message(capacity: int, max_body_bytes: int) -> int:
    """The largest message the gRPC port reads, for a budget of `capacity` bytes."""
    return min(max_body_bytes, capacity // (GRPC_COPIES * LARGEST_READS_AT_ONCE))


_trimming = False


def _trim_soon() -> None:
    """Return the allocator's free pages to the system (glibc's `malloc_trim`), off the event
    loop (it walks the heap: milliseconds), one at a time. gRPC reads a large message in many
    small buffers, and glibc keeps the freed ones in its arenas: without this, a burst of large
    calls left the proxy 150 MiB above its resting size for good."""
    global _trimming
    if _trimming or _TRIM is None:
        return
    _trimming = True

    def trimmed(_: object) -> None:
        global _trimming
        _trimming = False

    asyncio.get_running_loop().run_in_executor(None, _TRIM, 0).add_done_callback(trimmed)


def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc (musl): nothing to call
        return None


_TRIM = _malloc_trim()
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def map_large_blocks() -> None:
    """Have glibc give every block of a MiB or more its own mapping, returned to the system
    when freed (by default it raises that threshold as mapped blocks are freed, then keeps
    large freed blocks in its arenas)."""
    with contextlib.suppress(AttributeError, OSError):  # not glibc (musl)
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 1 << 20)


def memory_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """This container's memory limit in bytes (cgroup v2 `memory.max`, v1
    `memory.limit_in_bytes`), or None when it has none."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit():
            return None
        limit = int(text)
        return None if limit >= 1 << 60 else limit  # v1 writes "no limit" as a huge number
    return None


def default_budget(limit: int | None) -> int:
    """The budget for a container limited to `limit` bytes (None: no limit)."""
    if limit is None:
        return NO_LIMIT_BUDGET
    return max(SMALLEST_BUDGET, (limit - BASELINE_BYTES) * 3 // 4)


# The payload log's default share of the budget: an eighth (18 MiB of the Deployment's 144).
PAYLOAD_LOG_SHARE = 8


@dataclass(frozen=True)
class MemoryPlan:
    """The proxy's memory budget, split: what requests in flight may hold (`ByteBudget`), and
    what the payload log's queue may hold (0: the log is off)."""

    requests: int
    payload_log: int


def plan_memory(total: int, payload_log_bytes: int | None) -> MemoryPlan:
    """Split a budget of `total` bytes. `payload_log_bytes`: None when the payload log is off
    (requests keep it all), 0 for its default share, or the bytes asked for. ValueError when
    what is asked would leave requests less than the smallest budget."""
    if payload_log_bytes is None:
        return MemoryPlan(requests=total, payload_log=0)
    queue = payload_log_bytes or total // PAYLOAD_LOG_SHARE
    if total - queue < SMALLEST_BUDGET:
        raise ValueError(
            f"PAYLOAD_LOG_QUEUE_BYTES ({queue}) leaves requests less than "
            f"{SMALLEST_BUDGET // MiB} MiB of the memory budget ({total} bytes): lower it, or "
            "raise MEMORY_BUDGET_BYTES or the container's memory limit"
        )
    return MemoryPlan(requests=total - queue, payload_log=queue)


class ByteBudget:
    """Bytes taken and given back, at most `capacity` at once. One event loop's: not locked.

    Waiters are served in order, so a large request waiting for room is not overtaken for ever
    by small ones."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.held = 0
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        BUDGET_HELD.set(0)

    def try_take(self, size: int) -> Hold | None:
        """A hold on `size` bytes if they fit now, else None. Nothing (a request without a
        body: a probe, metadata) always fits. A gRPC read waiting for room does not block a
        request that fits: the REST port never waits, and refusing what fits would turn one
        queued read into 429s for everyone."""
        if size and self.held + size > self.capacity:
            return None
        return self._grant(size)

    async def take(self, size: int, patience: float) -> Hold | None:
        """A hold on `size` bytes, waiting up to `patience` seconds for them; None if they
        never fit (or are more than the whole budget)."""
        hold = None if self._waiting else self.try_take(size)  # no overtaking among waiters
        if hold is not None or size > self.capacity:
            return hold
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, waiter)
        self._waiting.append(entry)
        granted = False
        try:
            async with asyncio.timeout(patience):
                await waiter
            granted = True
        except TimeoutError:
            pass
        finally:
            if not granted:  # timed out or cancelled (the client left)
                if waiter.done() and not waiter.cancelled():  # woken as it gave up
                    self._give_back(size)
                elif entry in self._waiting:
                    self._waiting.remove(entry)
                    self._wake()
        return Hold(self, size) if granted else None  # `_wake` counted it as held

    def _grant(self, size: int) -> Hold:
        self.held += size
        BUDGET_HELD.set(self.held)
        return Hold(self, size)

    def _give_back(self, size: int) -> None:
        self.held -= size
        BUDGET_HELD.set(self.held)
        self._wake()
        if self.held == 0 and size >= LARGE_RELEASE:
            _trim_soon()  # the burst is over

    def _wake(self) -> None:
        while self._waiting:
            size, waiter = self._waiting[0]
            if waiter.done():  # timed out, leaving
                self._waiting.popleft()
                continue
            if self.held + size > self.capacity:
                return
            self._waiting.popleft()
            self.held += size
            BUDGET_HELD.set(self.held)
            waiter.set_result(None)


class Hold:
    """What one request holds of the budget; `release` (or leaving the `with`) gives it all
    back, once."""

    def __init__(self, budget: ByteBudget, size: int):
        self.budget = budget
        self.size = size

    def resize(self, size: int) -> bool:
        """Hold `size` bytes instead: give back what is over, or take what is missing if it
        fits now (False, holding as before, if it does not)."""
        if size <= self.size:
            if size < self.size:
                self.budget._give_back(self.size - size)
                self.size = size
            return True
        more = self.budget.try_take(size - self.size)
        if more is None:
            return False
        self.size, more.size = size, 0
        return True

    def release(self) -> None:
        if self.size:
            self.budget._give_back(self.size)
            self.size = 0

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
