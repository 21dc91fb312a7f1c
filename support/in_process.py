"""The `unit` marker's rule, enforced: a unit test runs in process and pure, so it starts no
child process (subprocess, fork, spawn, multiprocessing), binds, listens on or connects no
socket (Python's sockets, asyncio's servers and connections, gRPC's channels and servers) and
looks up no name (the resolver's lookups go to the network: DNS).

`refused()` is a context manager that makes each of those raise `NotInProcess` naming the rule
and the call, and keeps what was refused: a library that swallows the error still leaves its
trace, and `enforced()` (tests/conftest.py's hooks, around a unit test's setup, call and
teardown) fails the test on it.

Where the guard takes hold: at the entry points themselves, so that a name bound before it
(`from subprocess import run`, `from grpc.aio import server`) is caught too. Sockets are
`socket.socket`'s methods; names, `_socket.getaddrinfo` (which `socket.getaddrinfo`, asyncio
and the HTTP clients all call) and the `gethostby*`/`getnameinfo` functions of `socket` and
`_socket`; gRPC, its core's four classes (`cygrpc.Server`, `Channel`, `AioServer`,
`AioChannel`), which every `grpc.server`, `grpc.aio.server` and channel constructs. Not caught:
a method taken from an object before (`connect = sock.connect`), or `from socket import
gethostbyname` before the guard (C functions: the guard replaces their names, not them).

Let through, as neither a child nor the network:
- a lookup that needs no resolver: of a numeric address (IPv4, IPv6), of `localhost`, of no
  host (None, "": the wildcard address); a reverse lookup (`gethostbyaddr`, `getnameinfo`) only
  of the loopback or with NI_NUMERICHOST, since reversing any other address asks DNS;
- `socket.socketpair()`, which binds nothing (asyncio's event loop makes one to wake up), and
  datagrams on Unix sockets;
- a module's import: what a library does once, when first imported (`platform.processor()`'s
  `uname -p` under h5py, urllib3's IPv6 probe), belongs to whichever test imports it first.

Whose calls: the guard holds the test's thread, and what works for it. A thread started under a
guard is held as the thread that started it was, and stays so (a pool worker or a queue's
worker a unit test started is held in every later unit test too); a task submitted to a
`ThreadPoolExecutor` (asyncio's `run_in_executor` and `to_thread` too) runs held as its
submitter was, whichever worker runs it (an idle worker a process test left is not a way out).
Exempt: threads that were running when the guard began and were not started under one (a
process test's server thread, a log reader, threads started at import), threads those start,
and a fixture's teardown whose setup was not held (`exempt()`: a process test's fixture whose
scope ends after a unit test). Left open: a thread of that exempt kind that does the unit
test's work by a way other than `ThreadPoolExecutor.submit` (a queue of its own,
`multiprocessing.pool.ThreadPool`, anyio's worker threads, an event loop it runs), and a pool
task queued before the guard began. Under `-m unit` every fixture is set up under a guard, so
the only threads of that kind are those started at collection (by imports).

Not guarded: collection. A test module's top-level code runs once, at collection, for all of
its tests, unit or not, so a refusal there belongs to no one test (and would stop the session
as a collection error); and it is mostly imports, which legitimately probe (h5py runs `uname
-p`, urllib3 binds `::1`), so the import exemption above would let nearly all of it through
anyway. Top-level code that leaves the process is for review to catch; a fixture is its place.
"""

from __future__ import annotations

import _socket
import concurrent.futures
import ipaddress
import os
import socket
import subprocess
import sys
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import pytest

RULE = (
    "a test marked `unit` runs in process and pure: no child process, no socket bound, "
    "listened on or connected, no name looked up (pyproject.toml's marker); unmark it, or keep "
    "it in process"
)


class NotInProcess(AssertionError):
    """Raised for a call the unit rule refuses."""


def _importing() -> bool:
    """Whether a module is being imported: what a library does once, when first imported
    (platform.processor()'s `uname -p` under h5py, urllib3's IPv6 probe), belongs to whichever
    test imports it first, so it is not held against that one."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "_find_and_load" and "importlib" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _local(_socket: socket.socket, _data: Any, *rest: Any) -> bool:
    return _socket.family == socket.AF_UNIX


def _address(host: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names without a lookup: an IPv4 or IPv6 literal (with a scope)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        return ipaddress.ip_address(host) if isinstance(host, str) else None
    except ValueError:
        return None


def _localhost(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return isinstance(host, str) and host.lower().rstrip(".") == "localhost"


def _no_lookup(host: Any, *rest: Any, **options: Any) -> bool:
    """A forward lookup the resolver answers without the network: no host (the wildcard),
    Python's own "<broadcast>", a numeric address, localhost, or AI_NUMERICHOST asked."""
    flags = options.get("flags", rest[4] if len(rest) > 4 else 0)
    return (
        host in (None, "", b"", "<broadcast>")
        or _address(host) is not None
        or _localhost(host)
        or bool(flags & socket.AI_NUMERICHOST)
    )


def _loopback(host: Any, *rest: Any) -> bool:
    """A reverse lookup without the network: of localhost or a loopback address (any other
    address is asked of DNS, numeric or not)."""
    address = _address(host)
    return _localhost(host) or (address is not None and address.is_loopback)


def _numeric_name(sockaddr: Any, flags: int = 0) -> bool:
    return bool(flags & socket.NI_NUMERICHOST) or _loopback(sockaddr[0])


# (owner, attribute, what it does, when it is allowed after all): the calls that start a child
# or use the network.
def _calls() -> list[tuple[Any, str, str, Callable[..., bool] | None]]:
    import _posixsubprocess
    import multiprocessing.process

    child = "starts a child process"
    calls: list[tuple[Any, str, str, Callable[..., bool] | None]] = [
        (subprocess.Popen, "__init__", f"{child} (subprocess.Popen)", None),
        (_posixsubprocess, "fork_exec", f"{child} (fork_exec)", None),
        (multiprocessing.process.BaseProcess, "start", f"{child} (multiprocessing)", None),
        (socket.socket, "bind", "binds a socket", None),
        (socket.socket, "listen", "listens on a socket", None),
        (socket.socket, "connect", "connects a socket", None),
        (socket.socket, "connect_ex", "connects a socket", None),
        (socket.socket, "sendto", "sends a datagram", _local),
        # socket.getaddrinfo calls this one: asyncio, urllib3, httpx (anyio) all do.
        (_socket, "getaddrinfo", "looks up a name (getaddrinfo)", _no_lookup),
    ]
    for module in (socket, _socket):
        calls += [
            (module, "gethostbyname", "looks up a name (gethostbyname)", _no_lookup),
            (module, "gethostbyname_ex", "looks up a name (gethostbyname_ex)", _no_lookup),
            (module, "gethostbyaddr", "looks up an address (gethostbyaddr)", _loopback),
            (module, "getnameinfo", "looks up an address (getnameinfo)", _numeric_name),
        ]
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        if hasattr(os, name):
            calls.append((os, name, f"{child} (os.{name})", None))
    try:
        from grpc._cython import cygrpc
    except ImportError:
        return calls
    # gRPC's core: every server and channel, sync or asyncio, is one of these.
    for name, what in (
        ("Server", "starts a gRPC server (grpc.server)"),
        ("AioServer", "starts a gRPC server (grpc.aio.server)"),
        ("Channel", "opens a gRPC channel (grpc.*_channel)"),
        ("AioChannel", "opens a gRPC channel (grpc.aio.*_channel)"),
    ):
        calls.append((cygrpc, name, what, None))
    return calls


@dataclass(eq=False)
class _Guard:
    thread: threading.Thread  # the test's
    others: set[threading.Thread]  # running when it began
    refusals: list[str] = field(default_factory=list)
    paused: int = 0  # within exempt()


_guards: list[_Guard] = []  # the guards in force, innermost last; the innermost decides
_patches: list[pytest.MonkeyPatch] = []  # installed while any guard is
# Threads started under a guard: held or not, as their starter was (for as long as they live).
_started: weakref.WeakKeyDictionary[threading.Thread, bool] = weakref.WeakKeyDictionary()
_task = threading.local()  # .held: as the submitter of the pool task this thread runs was


def _held(guard: _Guard) -> bool:
    """Whether the calling thread works for the test the guard holds."""
    if guard.paused:
        return False
    held = getattr(_task, "held", None)
    if held is not None:
        return bool(held)
    thread = threading.current_thread()
    if thread is guard.thread:
        return True
    held = _started.get(thread)
    if held is not None:
        return held
    return thread not in guard.others  # one started in the test some other way: held


def _guarded(original: Callable, what: str, allowed: Callable[..., bool] | None) -> Callable:
    def call(*args: Any, **kwargs: Any) -> Any:
        guard = _guards[-1] if _guards else None
        if (
            guard is None
            or not _held(guard)
            or (allowed and allowed(*args, **kwargs))
            or _importing()
        ):
            return original(*args, **kwargs)
        message = f"{what}: {RULE}"
        # Where, for a refusal the code under test caught: its own traceback is gone then.
        stack = "".join(traceback.format_stack(limit=12)[:-1])
        guard.refusals.append(f"{message}\n{stack}")
        raise NotInProcess(message)

    return call


def _install() -> pytest.MonkeyPatch:
    patch = pytest.MonkeyPatch()
    for owner, name, what, allowed in _calls():
        patch.setattr(owner, name, _guarded(getattr(owner, name), what, allowed))

    start = threading.Thread.start

    def starting(thread: threading.Thread) -> None:
        guard = _guards[-1] if _guards else None
        if guard is not None:
            _started[thread] = _held(guard)
        start(thread)

    submit = concurrent.futures.ThreadPoolExecutor.submit

    def submitting(pool: Any, fn: Callable, /, *args: Any, **kwargs: Any) -> Any:
        guard = _guards[-1] if _guards else None
        held = _held(guard) if guard is not None else False

        def task(*args: Any, **kwargs: Any) -> Any:
            outer = getattr(_task, "held", None)
            _task.held = held
            try:
                return fn(*args, **kwargs)
            finally:
                _task.held = outer

        return submit(pool, task, *args, **kwargs)

    patch.setattr(threading.Thread, "start", starting)
    patch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", submitting)
    return patch


@contextmanager
def refused() -> Iterator[list[str]]:
    """Within: the calls above raise NotInProcess from this thread and from what works for it
    (see the module's docstring); the list yielded collects each refusal's message. Nested, the
    innermost decides and collects."""
    guard = _Guard(threading.current_thread(), set(threading.enumerate()))
    guard.others.discard(guard.thread)
    if not _guards:
        _patches.append(_install())
    _guards.append(guard)
    try:
        yield guard.refusals
    finally:
        _guards.remove(guard)
        if not _guards:
            _patches.pop().undo()


@contextmanager
def enforced() -> Iterator[None]:
    """`refused()`, and a refusal fails the test: raised, with the traceback of the call
    refused; swallowed by the code under test (which then failed otherwise or not at all),
    with where the call was made."""
    with refused() as refusals:
        try:
            yield
        except NotInProcess:
            raise
        except BaseException:
            if not refusals:
                raise
    if refusals:
        pytest.fail(refusals[0], pytrace=False)


def holding() -> bool:
    """Whether a guard holds the calling code now."""
    return bool(_guards) and _held(_guards[-1])


@contextmanager
def exempt() -> Iterator[None]:
    """Within: the innermost guard lets everything through, and what is started or submitted
    meanwhile is not held (code that is not the test's: a process test's fixture torn down)."""
    guard = _guards[-1] if _guards else None
    if guard is None:
        yield
        return
    guard.paused += 1
    try:
        yield
    finally:
        guard.paused -= 1


@contextmanager
def held_as(held: bool) -> Iterator[None]:
    """Within: the calling code held to the rule if `held`, exempt if not, whatever holds now
    (a fixture's teardown, held as its setup was)."""
    if held == holding():
        yield
    elif held:
        with enforced():
            yield
    else:
        with exempt():
            yield
