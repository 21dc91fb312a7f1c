"""The test servers' port allocator (support/ports.py) taking real ports: no port handed out
twice, in one process, across threads or across processes, and none from the kernel's ephemeral
range. Bind probes, forks and children, so not `unit` (its pure rules: test_port_blocks.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading

from support import ports
from support.ports import BLOCK, PortAllocator, ephemeral_range
from support.servers import ROOT


def test_one_process_never_gets_the_same_port_twice(tmp_path):
    allocator = PortAllocator(tmp_path)
    taken = [allocator.take() for _ in range(3 * BLOCK + 7)]  # crosses several blocks
    assert len(set(taken)) == len(taken)
    low, high = ephemeral_range()
    assert not [port for port in taken if low <= port <= high]


def test_a_port_something_listens_on_is_skipped(tmp_path):
    allocator = PortAllocator(tmp_path)
    first = allocator.take()
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", first + 1))  # on every address, not only loopback
        listener.listen()
        assert allocator.take() == first + 2


def test_threads_never_share_a_port(tmp_path):
    allocator = PortAllocator(tmp_path)
    taken: list[int] = []

    def take_many():
        taken.extend(allocator.take() for _ in range(60))

    threads = [threading.Thread(target=take_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == len(set(taken)) == 480


def test_a_forked_child_never_gets_its_parents_ports():
    parent = [ports.free_port() for _ in range(3)]
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own allocator, other blocks
        os.close(reader)
        os.write(writer, " ".join(str(ports.free_port()) for _ in range(3)).encode())
        os._exit(0)
    os.close(writer)
    child = set(map(int, os.read(reader, 1000).split()))
    os.close(reader)
    os.waitpid(pid, 0)
    assert len(child) == 3
    assert not child & set(parent + [ports.free_port() for _ in range(3)])


def test_a_planted_link_is_not_followed(tmp_path):
    target = tmp_path / "victim"
    allocator = PortAllocator(tmp_path / "locks", first_block=0)
    (tmp_path / "locks").mkdir()
    first = ports.candidate_blocks(ports.ephemeral_range())[0]
    (tmp_path / "locks" / f"{first}.lock").symlink_to(target)
    port = allocator.take()
    assert not target.exists()
    assert not first <= port < first + ports.BLOCK  # that block skipped


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from support.ports import PortAllocator
    allocator = PortAllocator(Path(sys.argv[1]), first_block=0)
    print(" ".join(str(allocator.take()) for _ in range(150)), flush=True)
    sys.stdin.read()  # hold the blocks until the test has both lists
    """
)


def test_two_processes_starting_at_the_same_block_get_disjoint_ports(tmp_path):
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        lists = [set(map(int, child.stdout.readline().split())) for child in children]
    finally:
        for child in children:
            child.communicate("", timeout=30)
    assert len(lists[0]) == len(lists[1]) == 150
    assert not lists[0] & lists[1]


def test_a_block_is_free_again_once_its_process_has_exited(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        cwd=ROOT,
        input="",
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    first = min(map(int, done.stdout.split()))
    assert PortAllocator(tmp_path, first_block=0).take() == first
