"""The payload log's memory, pure: the queue's bounds in bytes and events, body copies that
drop (and count) rather than wait, their bytes given back however they end, one line when
dropping starts and one when it stops, and the queue's share of the memory budget."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth_proxy.budget import SMALLEST_BUDGET, MemoryPlan, default_budget, plan_memory
from auth_proxy.metrics import PAYLOAD_LOG_QUEUE_BYTES
from auth_proxy.payload_events import REQUEST, RESPONSE
from auth_proxy.payload_queue import EVENT_OVERHEAD, DropSpells, PayloadQueue

pytestmark = pytest.mark.unit

MiB = 1024 * 1024


def queue(capacity: int = 10_000, events: int = 100) -> tuple[PayloadQueue, list[str]]:
    drops: list[str] = []
    return PayloadQueue(capacity, events, drops.append), drops


def test_a_body_is_queued_whole_in_the_pieces_it_came_in():
    q, drops = queue()
    pieces = [b"a" * 100, b"b" * 200]
    with q.copy(REQUEST, "id-1", "application/json", stamp_now=True) as copy:
        for piece in pieces:
            copy.add(piece)
        assert q.held == EVENT_OVERHEAD + 300
        copy.finish()
    assert q.held == EVENT_OVERHEAD + 300  # queued: held until sent
    assert PAYLOAD_LOG_QUEUE_BYTES._value.get() == q.held
    payload = asyncio.run(q.get())
    assert payload.pieces == tuple(pieces) and payload.pieces[0] is pieces[0]
    assert (payload.type, payload.id, payload.content_type) == (REQUEST, "id-1", "application/json")
    q.sent(payload)
    assert q.held == 0 and not drops


def test_a_body_larger_than_the_queue_is_dropped_as_too_large_once():
    q, drops = queue(capacity=EVENT_OVERHEAD + 1000)
    with q.copy(REQUEST, "id", "x/y", stamp_now=True) as copy:
        copy.add(b"x" * 600)
        copy.add(b"x" * 600)  # 1200 > 1000: never fits, whatever is queued
        copy.add(b"x" * 600)
        copy.finish()
    assert drops == ["too_large"] and q.held == 0 and q.waiting() == 0


def test_no_room_now_drops_the_event_as_queue_full_and_never_waits():
    q, drops = queue(capacity=2 * EVENT_OVERHEAD + 1000)
    with q.copy(REQUEST, "first", "x/y", stamp_now=True) as first:
        first.add(b"1" * 900)
        with q.copy(RESPONSE, "second", "x/y", stamp_now=False) as second:
            second.add(b"2" * 200)  # 900 + 200 > 1000: no room
            second.finish()
        first.finish()
    assert drops == ["queue_full"]
    assert q.waiting() == 1 and q.held == EVENT_OVERHEAD + 900


def test_the_events_are_bounded_in_number_too():
    q, drops = queue(events=2)
    for n in range(3):
        with q.copy(REQUEST, str(n), "x/y", stamp_now=True) as copy:
            copy.add(b"x")
            copy.finish()
    assert q.waiting() == 2 and drops == ["queue_full"]
    assert q.held == 2 * (EVENT_OVERHEAD + 1)  # the third gave its bytes back


def test_a_body_that_never_completed_is_no_event_and_no_drop():
    q, drops = queue()
    with q.copy(REQUEST, "id", "x/y", stamp_now=True) as copy:
        copy.add(b"x" * 500)
    assert q.held == 0 and q.waiting() == 0 and not drops
    copy.finish()  # too late: closed
    assert q.waiting() == 0


def test_even_a_full_queue_costs_a_request_nothing_but_a_count():
    q, drops = queue(capacity=EVENT_OVERHEAD - 1)
    with q.copy(REQUEST, "id", "x/y", stamp_now=True) as copy:
        copy.add(b"x")
        copy.finish()
    assert drops == ["queue_full"] and q.held == 0


def test_requests_are_stamped_on_arrival_answers_on_their_end():
    q, _ = queue()
    with q.copy(REQUEST, "a", "x/y", stamp_now=True) as request:
        arrived = request.occurred
        request.finish()
    with q.copy(RESPONSE, "a", "x/y", stamp_now=False) as answer:
        assert answer.occurred is None
        answer.finish()
    first, second = asyncio.run(q.get()), asyncio.run(q.get())
    assert first.occurred == arrived and second.occurred >= arrived


operations = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4000)), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_the_log_never_holds_more_than_its_capacity_and_gives_everything_back(steps):
    """Copies opened, fed, finished, abandoned and sent in any order: what is held never goes
    over the capacity, and once every copy is closed and every event sent, nothing is."""
    q, _ = queue(capacity=8000, events=5)
    copies = []
    for action, size in steps:
        if action == 0:
            copies.append(q.copy(REQUEST, "i", "x/y", stamp_now=True))
        elif action == 1 and copies:
            copies[size % len(copies)].add(b"x" * size)
        elif action == 2 and copies:
            copies.pop(size % len(copies)).finish()
        elif action == 3 and q.waiting():
            q.sent(asyncio.run(q.get()))
        assert 0 <= q.held <= q.capacity
    for copy in copies:
        copy.close()
    while q.waiting():
        q.sent(asyncio.run(q.get()))
    assert q.held == 0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_dropping_is_one_line_when_it_starts_and_one_when_it_stops():
    clock = Clock()
    spells = DropSpells(quiet_seconds=10, clock=clock)
    assert spells.check() is None
    first = spells.dropped("send_failed")
    assert first is not None and "dropping events (send_failed)" in first
    lines = [spells.dropped(reason) for reason in ["queue_full"] * 50 + ["send_failed"] * 9]
    assert lines == [None] * 59
    clock.now += 9.9
    assert spells.check() is None  # not quiet long enough
    clock.now += 0.1
    stopped = spells.check()
    assert stopped == (
        "payload log: no events dropped for 10 s; 60 were dropped (queue_full 50, send_failed 10)"
    )
    assert spells.check() is None  # said once
    assert spells.dropped("too_large") is not None  # a new spell


def test_the_payload_log_takes_its_queue_out_of_the_memory_budget():
    deployment = default_budget(256 * MiB)  # the Deployment's limit: 144 MiB
    assert plan_memory(deployment, None) == MemoryPlan(requests=deployment, payload_log=0)
    default = plan_memory(deployment, 0)
    assert default == MemoryPlan(requests=126 * MiB, payload_log=18 * MiB)
    assert plan_memory(deployment, 4 * MiB) == MemoryPlan(140 * MiB, 4 * MiB)
    assert plan_memory(deployment, deployment - SMALLEST_BUDGET).requests == SMALLEST_BUDGET
    with pytest.raises(ValueError, match="PAYLOAD_LOG_QUEUE_BYTES"):
        plan_memory(deployment, deployment - SMALLEST_BUDGET + 1)


def test_with_its_queue_the_largest_grpc_message_still_takes_32_fp32_images():
    from auth_proxy.budget import largest_grpc_message

    requests = plan_memory(default_budget(256 * MiB), 0).requests
    assert largest_grpc_message(requests, 64 * MiB) >= 32 * 224 * 224 * 3 * 4
