"""The bytes requests may hold at once in the predictor, bounded by the container's memory.

A request takes what it will hold before it holds it: its body (`bodies.BodyLimit`), its gRPC
message (`grpc_service`), the Python objects a JSON tensor parses into (`codec`), its batch of
decoded pixels and each image's decoding (`model`). What does not fit is refused at once: 429
with `Retry-After` / RESOURCE_EXHAUSTED, counted in `/metrics` — never an out-of-memory kill.
Decoding waits a little instead (`DECODE_PATIENCE_SECONDS`): it is the request's own work, and
a decode ends in well under a second.

The budget is `MEMORY_BUDGET_BYTES` (`--memory_budget_bytes`), or else sized once the model is
loaded: three quarters of what the container's limit (cgroup `memory.max`) leaves above the
process's resident memory then. The rest is slack for what no request owns: the allocator's
free lists, the answers, the runtimes' scratch buffers. Shared by the event loop and the
decoding threads, so it is locked.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from pathlib import Path

from . import metrics
from .errors import OverBudget

MiB = 1024 * 1024
NO_LIMIT_BUDGET = 1024 * MiB  # outside a container with a memory limit
SMALLEST_BUDGET = 64 * MiB
# Before the model is loaded nothing is served but probes: a budget until it is sized.
UNSIZED_BUDGET = 256 * MiB
# When the last request holding memory gives back this much, the allocator's free pages go back
# to the system: not after each request (a trim walks the heap), only once the burst is over.
LARGE_RELEASE = 4 * MiB
DECODE_PATIENCE_SECONDS = 5.0


def memory_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """This container's memory limit in bytes (cgroup v2 `memory.max`, v1
    `memory.limit_in_bytes`), or None when it has none."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if not text.isdigit():  # "max"
            return None
        limit = int(text)
        return None if limit >= 1 << 60 else limit  # v1 writes "no limit" as a huge number
    return None


def resident_bytes() -> int:
    """This process's resident memory now (Linux), 0 where unknown."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE")


def sized_budget(limit: int | None, resident: int) -> int:
    """The budget for a process holding `resident` bytes in a container limited to `limit`."""
    if limit is None:
        return NO_LIMIT_BUDGET
    return max(SMALLEST_BUDGET, (limit - resident) * 3 // 4)


class MemoryBudget:
    """Bytes taken and given back, at most `capacity` at once."""

    def __init__(self, capacity: int = UNSIZED_BUDGET):
        self._free = threading.Condition()
        self.held = 0
        self.capacity = 0
        self.resize(capacity)

    def resize(self, capacity: int) -> None:
        with self._free:
            self.capacity = capacity
            metrics.BUDGET_BYTES.set(capacity)
            self._free.notify_all()

    def take(self, size: int) -> Taken:
        """Hold `size` bytes now, or OverBudget."""
        with self._free:
            if self.held + size > self.capacity:
                metrics.BUDGET_REFUSALS.inc()
                raise OverBudget(size, self.capacity)
            return self._hold(size)

    def wait_for(self, size: int, patience: float = DECODE_PATIENCE_SECONDS) -> Taken:
        """Hold `size` bytes, waiting up to `patience` seconds for them (a thread's wait);
        OverBudget if they do not free in time or are more than the whole budget."""
        with self._free:
            fits = self._free.wait_for(
                lambda: self.held + size <= self.capacity or size > self.capacity, patience
            )
            if not fits or size > self.capacity:
                metrics.BUDGET_REFUSALS.inc()
                raise OverBudget(size, self.capacity)
            return self._hold(size)

    def _hold(self, size: int) -> Taken:
        self.held += size
        metrics.BUDGET_HELD.set(self.held)
        return Taken(self, size)

    def _give_back(self, size: int) -> None:
        with self._free:
            self.held -= size
            metrics.BUDGET_HELD.set(self.held)
            self._free.notify_all()
            idle = self.held == 0
        if idle and size >= LARGE_RELEASE:
            _trim_soon(lambda: self.held == 0)


class Taken:
    """Bytes one request holds; given back once, when its `with` ends (or by `release`)."""

    def __init__(self, budget: MemoryBudget, size: int):
        self.budget, self.size = budget, size

    def release(self) -> None:
        size, self.size = self.size, 0
        if size:
            self.budget._give_back(size)

    def __enter__(self) -> Taken:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


# A trim locks each of glibc's arenas in turn while it walks them: a thread allocating meanwhile
# (the event loop answering a probe) waits. So it runs only once no request has held memory for
# this long: after a burst, not in the pause between two requests of one.
_TRIM_DELAY_SECONDS = 2.0
_trimming = threading.Lock()


def _trim_soon(still_idle) -> None:
    """Return the allocator's free pages to the system (glibc's `malloc_trim`) once the
    request that gave its memory back has let go of its objects too (its message, its answer:
    they outlive the budget's hold by a few milliseconds); at most one trim pending. glibc keeps
    the small blocks a burst freed (gRPC's buffers, protobuf's, Python's) in its arenas, which
    the pod's limit counts as used."""
    if _TRIM is None or not _trimming.acquire(blocking=False):
        return

    def trim() -> None:
        try:
            if still_idle():
                _TRIM(0)
        finally:
            _trimming.release()

    timer = threading.Timer(_TRIM_DELAY_SECONDS, trim)
    timer.daemon = True
    timer.start()


def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc (musl): nothing to call
        return None


_TRIM = _malloc_trim()
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 1 << 20


def map_large_blocks() -> None:
    """Have glibc give every block of a MiB or more its own mapping, returned to the system
    when freed. By default glibc raises that threshold (up to 32 MiB) each time a mapped block
    is freed, and from then serves large blocks (Pillow's 16 MiB image blocks, a batch's
    pixels) from per-thread arenas, which keep what is freed: with six decoding threads, each
    arena held its own few hundred MB, and the predictor stood 600 MB above what its requests
    held (measured). Setting it once turns the adjustment off."""
    # Not glibc (musl): its allocator maps large blocks by itself.
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
