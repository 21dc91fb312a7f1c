"""Ports for the servers the tests and benches start: never the same one twice.

The old way (bind port 0, close, hand the number on) raced: between the close and the server's
own bind, another server of the same run could be handed the same number (the kernel gives a
freed port out again), or an outgoing connection could take it as its ephemeral source port —
`[Errno 98] address already in use`, failing a whole module on a busy machine.

Here each process claims a block of ports with an advisory lock (`flock` on a file per block,
held until the process exits, so a crash frees it) and hands its ports out one by one, each
once. Blocks lie outside the kernel's ephemeral range (`ip_local_port_range`), so no outgoing
connection is ever given one. A port something else already listens on is skipped. Two test
runs at once get disjoint blocks; most of our servers cannot bind port 0 and report it (KServe's
ModelServer, MLflow, moto, Prometheus, Node's issuer), which is why the numbers are allocated
rather than discovered.

The lock folder is shared by the machine's users (`/tmp/cats-dogs-other-ports`, sticky, like
/tmp itself) so that their runs stay apart too; one that is not a plain sticky folder owned by
root or by us is not trusted, and a folder of our own is used instead (ports another user's run
listens on are still skipped, as anything else's).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import threading
from pathlib import Path

BLOCK = 100
LOWEST = 20000
EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
SHARED_LOCK_DIR = Path("/tmp/cats-dogs-other-ports")  # not $TMPDIR: every run must see it


def ephemeral_range(text: str | None = None) -> tuple[int, int]:
    """The kernel's ephemeral port range (first, last), or Linux's default where unreadable."""
    try:
        first, last = (text if text is not None else EPHEMERAL_FILE.read_text()).split()
        return int(first), int(last)
    except (OSError, ValueError):
        return 32768, 60999


def candidate_blocks(ephemeral: tuple[int, int]) -> list[int]:
    """First ports of the blocks between LOWEST and 65535 that lie wholly outside `ephemeral`."""
    low, high = ephemeral
    return [
        start
        for start in range(LOWEST, 65536 - BLOCK + 1, BLOCK)
        if start + BLOCK - 1 < low or start > high
    ]


def trusted_lock_dir(shared: Path = SHARED_LOCK_DIR) -> Path:
    """The shared folder when it is (or can be made) a real sticky folder owned by root or by
    us; else a folder of our own beside it."""
    with contextlib.suppress(FileExistsError):
        shared.mkdir()
        shared.chmod(0o1777)  # ours: any user's runs share it, as /tmp
    info = shared.lstat()
    if (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid in (0, os.getuid())
        and (info.st_mode & stat.S_ISVTX or not info.st_mode & 0o022)
    ):
        return shared
    own = shared.with_name(f"{shared.name}-{os.getuid()}")
    with contextlib.suppress(FileExistsError):
        own.mkdir(mode=0o700)
    info = own.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{shared} and {own} are not folders this user can trust")
    return own


class PortAllocator:
    """Hands out ports of the blocks this process holds, each once."""

    def __init__(self, lock_dir: Path | None = None, first_block: int | None = None) -> None:
        self._lock_dir = lock_dir
        self._lock = threading.Lock()
        self._held: list[int] = []  # lock file descriptors, kept open for the process's life
        self._ports: list[int] = []  # what is left of the current block
        ephemeral = ephemeral_range()
        self._blocks = candidate_blocks(ephemeral)
        if not self._blocks:
            raise RuntimeError(
                f"no block of {BLOCK} ports from {LOWEST} to 65535 lies outside the ephemeral "
                f"range {ephemeral} (net.ipv4.ip_local_port_range): narrow it to run the tests"
            )
        # Start where another process is unlikely to be: fewer blocked lock attempts.
        offset = (os.getpid() if first_block is None else first_block) % len(self._blocks)
        self._blocks = self._blocks[offset:] + self._blocks[:offset]

    def _lock_file(self, start: int) -> int | None:
        if self._lock_dir is None:
            self._lock_dir = trusted_lock_dir()
        path = self._lock_dir / f"{start}.lock"
        flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o444)
        except OSError as exc:  # another user's file we cannot read, or a link: not ours
            if exc.errno in (errno.EACCES, errno.ELOOP, errno.EPERM):
                return None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                return None
            raise
        return fd

    def _claim_block(self) -> None:
        while self._blocks:
            start = self._blocks.pop(0)
            fd = self._lock_file(start)
            if fd is not None:
                self._held.append(fd)
                self._ports = list(range(start, start + BLOCK))
                return
        raise RuntimeError(f"no free block of {BLOCK} ports left under {self._lock_dir}")

    def take(self) -> int:
        with self._lock:
            while True:
                if not self._ports:
                    self._claim_block()
                port = self._ports.pop(0)
                if _bindable(port):
                    return port


def _bindable(port: int) -> bool:
    """Nothing listens on it now, on any address (a server nobody here started may use a port
    in our range, on loopback or on all interfaces)."""
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            sock = socket.socket(family)
        except OSError:  # no IPv6 on this machine
            continue
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:  # IPv6 present but not configured
                    continue
                return False
    return True


_allocator: PortAllocator | None = None
_allocator_lock = threading.Lock()


def _forget_in_child() -> None:
    """A forked child starts its own allocator: the parent's list is the parent's to hand out."""
    global _allocator, _allocator_lock
    _allocator = None
    _allocator_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def free_port() -> int:
    """A port on 127.0.0.1 that no other caller, in this process or any other, is handed."""
    global _allocator
    with _allocator_lock:
        if _allocator is None:
            _allocator = PortAllocator()
        allocator = _allocator
    return allocator.take()
