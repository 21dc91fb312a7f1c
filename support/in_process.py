"""The `unit` marker's rule, enforced: a unit test runs in process and pure, so it starts no
child process (subprocess, fork, spawn, multiprocessing) and binds, listens on or connects no
socket (Python's sockets, asyncio's servers and connections, gRPC's channels and servers).

`refused()` is a context manager that makes each of those raise `NotInProcess` naming the rule
and the call, and keeps what was refused: a library that swallows the error still leaves its
trace, and tests/conftest.py fails the test on it.

Not the test's, so let through: threads that were running before it began (a process test's
fixture still serving, a log reader), and a module's import (a library's probe when first
imported, made once in the process by whichever test imports it first). Allowed too:
`socket.socketpair()`, which binds nothing (asyncio's event loop makes one to wake up), and
datagrams on Unix sockets.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

RULE = (
    "a test marked `unit` runs in process and pure: no child process, no socket bound, "
    "listened on or connected (pyproject.toml's marker); unmark it, or keep it in process"
)


class NotInProcess(AssertionError):
    """Raised for a call the unit rule refuses."""


def _importing() -> bool:
    """Whether a module is being imported: what a library does once, when first imported
    (platform.processor()'s `uname -p` under h5py, urllib3's IPv6 probe), belongs to whichever
    test imports it first, so it is not held against that one."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "_find_and_load" and "importlib" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _local(_socket: socket.socket, _data: Any, *rest: Any) -> bool:
    return _socket.family == socket.AF_UNIX


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
    ]
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        if hasattr(os, name):
            calls.append((os, name, f"{child} (os.{name})", None))
    try:
        import grpc
        import grpc.aio
    except ImportError:
        return calls
    for module, prefix in ((grpc, "grpc"), (grpc.aio, "grpc.aio")):
        calls.append((module, "server", f"starts a gRPC server ({prefix}.server)", None))
        for name in ("insecure_channel", "secure_channel"):
            calls.append((module, name, f"opens a gRPC channel ({prefix}.{name})", None))
    return calls


@contextmanager
def refused() -> Iterator[list[str]]:
    """Within: the calls above raise NotInProcess from this thread and from threads started
    within; the list yielded collects each refusal's message."""
    others = set(threading.enumerate()) - {threading.current_thread()}
    refusals: list[str] = []

    def guarded(original: Callable, what: str, allowed: Callable[..., bool] | None) -> Callable:
        def call(*args: Any, **kwargs: Any) -> Any:
            if (
                threading.current_thread() in others
                or (allowed and allowed(*args, **kwargs))
                or _importing()
            ):
                return original(*args, **kwargs)
            message = f"{what}: {RULE}"
            # Where, for a refusal the code under test caught: its own traceback is gone then.
            stack = "".join(traceback.format_stack(limit=12)[:-1])
            refusals.append(f"{message}\n{stack}")
            raise NotInProcess(message)

        return call

    with pytest.MonkeyPatch.context() as patch:
        for owner, name, what, allowed in _calls():
            patch.setattr(owner, name, guarded(getattr(owner, name), what, allowed))
        yield refusals
