"""The unit rule's guard (support/in_process.py, wired in tests/conftest.py): a test marked
`unit` that starts a child process or binds, listens on or connects a socket fails, naming the
rule, even where the code under test swallows the error; a pure one passes, and an unmarked one
is left alone. Every refusal happens before the call, so nothing is started here."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess

import grpc
import pytest

from support import in_process
from support.servers import ROOT

pytestmark = pytest.mark.unit

pytest_plugins = ["pytester"]


def listening() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 8080))
        server.listen()


def connecting() -> None:
    with socket.socket() as client:
        client.connect(("127.0.0.1", 9))


@pytest.mark.parametrize(
    "call",
    [
        lambda: subprocess.run(["true"], check=True),
        lambda: os.fork() or os._exit(0),  # a child that got through leaves at once
        lambda: os.posix_spawn("/bin/true", ["true"], {}),
        lambda: os.system("true"),
        lambda: multiprocessing.get_context("spawn").Process(target=int).start(),
        listening,
        connecting,
        lambda: socket.create_connection(("127.0.0.1", 9), timeout=1),
        lambda: grpc.insecure_channel("127.0.0.1:9"),
        lambda: grpc.server(None),
    ],
    ids=[
        "subprocess",
        "fork",
        "posix_spawn",
        "system",
        "multiprocessing",
        "bind",
        "connect",
        "create_connection",
        "grpc-channel",
        "grpc-server",
    ],
)
def test_each_way_out_of_the_process_is_refused(call):
    rule = "a test marked `unit` runs in process"
    with in_process.refused() as refusals, pytest.raises(in_process.NotInProcess, match=rule):
        call()
    assert len(refusals) == 1


def test_a_socket_pair_is_in_process():
    with in_process.refused() as refusals:
        left, right = socket.socketpair()
        with left, right:
            left.sendall(b"x")
            assert right.recv(1) == b"x"
    assert refusals == []


INNER_TESTS = """
import socket
import subprocess

import pytest


@pytest.mark.unit
def test_a_unit_test_starting_a_child():
    subprocess.run(["true"], check=True)


@pytest.mark.unit
def test_a_unit_test_connecting():
    socket.create_connection(("127.0.0.1", 9), timeout=1)


@pytest.mark.unit
def test_a_unit_test_whose_code_swallows_the_refusal():
    try:
        subprocess.run(["true"], check=True)
    except Exception:
        pass


@pytest.mark.unit
def test_a_pure_unit_test():
    assert sum([1, 2]) == 3


def test_an_unmarked_test():
    assert subprocess.Popen.__init__ is not None
"""


def test_the_suites_conftest_fails_a_unit_test_that_leaves_the_process(pytester):
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "ignore")
    result.assert_outcomes(passed=2, failed=3)
    failed = {report.head_line: str(report.longrepr) for report in result.reprec.getfailures()}
    assert set(failed) == {
        "test_a_unit_test_starting_a_child",
        "test_a_unit_test_connecting",
        "test_a_unit_test_whose_code_swallows_the_refusal",
    }
    assert (
        "NotInProcess: starts a child process (subprocess.Popen): a test marked `unit`"
        in (failed["test_a_unit_test_starting_a_child"])
    )
    assert "NotInProcess: connects a socket" in failed["test_a_unit_test_connecting"]
    swallowed = failed["test_a_unit_test_whose_code_swallows_the_refusal"]
    assert swallowed.startswith("starts a child process (subprocess.Popen): a test marked `unit`")
    assert "test_inner.py" in swallowed  # where the call was made
