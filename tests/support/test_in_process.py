"""The unit rule's guard (support/in_process.py, wired in tests/conftest.py): a test marked
`unit` that starts a child process, binds, listens on or connects a socket or looks up a name
fails, naming the rule, even where the code under test swallows the error, in its setup, call or
teardown, and from the threads and pool tasks that work for it; a pure one passes, and an
unmarked one is left alone. Every refusal happens before the call, so nothing is started here
(where a check is disabled, what gets through is `true`, a bind to a free loopback port, or a
lookup of a name under .invalid, which no resolver has)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import multiprocessing
import os
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from socket import getaddrinfo as getaddrinfo_bound_before
from urllib.parse import urlsplit

import grpc
import pytest
from grpc import server as grpc_server_bound_before
from grpc.aio import insecure_channel as aio_channel_bound_before
from grpc.aio import server as aio_server_bound_before

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


def binding() -> None:
    """A bind to a free loopback port: refused in a unit test, harmless where let through."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))


def in_a_loop(make):
    """`make()` called within a running event loop (grpc.aio's), the loop closed after."""

    async def made():
        return make()

    return lambda: asyncio.run(made())


async def resolving():
    return await asyncio.get_running_loop().getaddrinfo("example.invalid", 80)


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
        lambda: grpc_server_bound_before(None),
        in_a_loop(lambda: aio_server_bound_before()),
        in_a_loop(lambda: aio_channel_bound_before("127.0.0.1:9")),
        lambda: socket.getaddrinfo("example.invalid", 80),
        lambda: getaddrinfo_bound_before("example.invalid", 80),
        lambda: socket.gethostbyname("example.invalid"),
        lambda: socket.gethostbyname_ex("example.invalid"),
        lambda: socket.gethostbyaddr("192.0.2.1"),  # a numeric address, reversed: asks DNS
        lambda: socket.getnameinfo(("192.0.2.1", 80), 0),
        lambda: socket.create_connection(("example.invalid", 80), timeout=1),
        lambda: asyncio.run(resolving()),  # in the loop's executor
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
        "grpc-server-bound-before",
        "grpc-aio-server-bound-before",
        "grpc-aio-channel-bound-before",
        "getaddrinfo",
        "getaddrinfo-bound-before",
        "gethostbyname",
        "gethostbyname_ex",
        "gethostbyaddr",
        "getnameinfo",
        "create_connection-by-name",
        "asyncio-getaddrinfo",
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


def looked_up(call) -> None:
    with contextlib.suppress(OSError):  # no such entry here: still asked without the network
        call()


def test_a_lookup_without_the_network_is_let_through():
    """A numeric address, localhost, no host (the wildcard), AI_NUMERICHOST; reversing the
    loopback, or asking for numbers only; and what parses a name without looking it up."""
    with in_process.refused() as refusals:
        for call in [
            lambda: socket.getaddrinfo("127.0.0.1", 80),
            lambda: socket.getaddrinfo("::1", 80),
            lambda: socket.getaddrinfo(b"10.0.0.1", "80"),
            lambda: socket.getaddrinfo("localhost", 80),
            lambda: socket.getaddrinfo(None, 80, flags=socket.AI_PASSIVE),
            lambda: socket.getaddrinfo("", 80),
            lambda: socket.getaddrinfo("example.invalid", 80, flags=socket.AI_NUMERICHOST),
            lambda: socket.gethostbyname("127.0.0.1"),
            lambda: socket.gethostbyname("LOCALHOST"),
            lambda: socket.gethostbyname_ex("127.0.0.1"),
            lambda: socket.gethostbyaddr("127.0.0.1"),
            lambda: socket.gethostbyaddr("localhost"),
            lambda: socket.getnameinfo(("::1", 80, 0, 0), 0),
            lambda: socket.getnameinfo(("192.0.2.1", 80), socket.NI_NUMERICHOST),
        ]:
            looked_up(call)
        assert ipaddress.ip_address("192.0.2.1").is_private
        assert urlsplit("http://example.invalid:8080/v2").hostname == "example.invalid"
    assert refusals == []


def test_an_idle_pool_worker_runs_a_unit_tests_task_held():
    """A worker that code not held to the rule started (a process test's) and left idle: the
    task a unit test submits to it is held all the same, as its submitter."""
    with ThreadPoolExecutor(1) as pool:
        with in_process.exempt():
            pool.submit(int).result()  # the worker, started and left waiting
        with (
            in_process.refused() as refusals,
            pytest.raises(in_process.NotInProcess, match="binds a socket"),
        ):
            pool.submit(binding).result()
        assert len(refusals) == 1
        with in_process.refused() as refusals, in_process.exempt():
            pool.submit(binding).result()  # and one the exempt code submits is not
        assert refusals == []


def waiting_to_bind(go: threading.Event, outcome: list) -> threading.Thread:
    def run():
        go.wait(10)
        try:
            binding()
            outcome.append("bound")
        except in_process.NotInProcess as refusal:
            outcome.append(refusal)

    return threading.Thread(target=run, daemon=True)


def test_a_thread_a_unit_test_started_is_held_in_the_next():
    """A thread a unit test leaves running (its pool's worker, its queue's reader) is still
    held in a later one: not exempt as one running before that test began."""
    go = threading.Event()
    outcome: list[object] = []
    with in_process.refused():
        worker = waiting_to_bind(go, outcome)
        worker.start()
    with in_process.refused() as refusals:
        go.set()
        worker.join(10)
    assert len(refusals) == 1
    assert isinstance(outcome[0], in_process.NotInProcess)


def test_a_thread_code_not_held_started_is_left_alone():
    """A process test's server thread, still serving while a unit test runs, is not the unit
    test's: what it does is let through."""
    go = threading.Event()
    outcome: list[object] = []
    with in_process.exempt():
        server = waiting_to_bind(go, outcome)
        server.start()
    with in_process.refused() as refusals:
        go.set()
        server.join(10)
    assert refusals == []
    assert outcome == ["bound"]


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
    with in_process.exempt():  # the inner session's unmarked tests are not this test's
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


TEARDOWN_FIXTURES = """
import socket
import subprocess

import pytest


def binding():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))


@pytest.fixture
def child_at_teardown():
    yield
    subprocess.run(["true"], check=True)


@pytest.fixture(scope="session")
def server():
    yield
    binding()  # a process test's server, stopped


@pytest.fixture(scope="module")
def units():
    yield
    binding()
"""

TEARDOWN_TESTS = """
import subprocess

import pytest


@pytest.mark.unit
def test_a_unit_test_whose_fixture_starts_a_child_at_teardown(child_at_teardown):
    pass


@pytest.mark.unit
def test_a_unit_test_whose_finalizer_starts_a_child(request):
    request.addfinalizer(lambda: subprocess.run(["true"], check=True))


@pytest.mark.unit
def test_a_unit_test_first_to_use_a_module_fixture(units):
    pass


def test_an_unmarked_test_after_which_the_unit_tests_module_fixture_ends():
    pass
"""

SESSION_END = """
import pytest


def test_a_process_test(server):
    pass


@pytest.mark.unit
def test_a_unit_test_last_of_the_session():
    pass  # the process test's session fixture is torn down after it
"""


def test_a_unit_tests_teardown_is_held_and_a_process_tests_fixtures_are_not(pytester):
    """Teardown: a unit test's own fixtures and finalizers are held (its module fixture too,
    ended after an unmarked test); a process test's session fixture torn down after a unit
    test is not. Laid out as the suite is: the conftest in a folder, the session above it."""
    pytester.makeini("[pytest]\n")
    tests = pytester.mkpydir("suite")
    (tests / "conftest.py").write_text(
        (ROOT / "tests" / "conftest.py").read_text() + TEARDOWN_FIXTURES
    )
    (tests / "test_1_teardowns.py").write_text(TEARDOWN_TESTS)
    (tests / "test_2_session_end.py").write_text(SESSION_END)
    with in_process.exempt():  # the inner session's unmarked tests are not this test's
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-W", "ignore", "suite")
    errors = {
        report.head_line: str(report.longrepr)
        for report in result.reprec.getreports("pytest_runtest_logreport")
        if report.when == "teardown" and report.failed
    }
    assert set(errors) == {
        "test_a_unit_test_whose_fixture_starts_a_child_at_teardown",
        "test_a_unit_test_whose_finalizer_starts_a_child",
        "test_an_unmarked_test_after_which_the_unit_tests_module_fixture_ends",
    }
    assert (
        "starts a child process"
        in errors["test_a_unit_test_whose_fixture_starts_a_child_at_teardown"]
    )
    assert "starts a child process" in errors["test_a_unit_test_whose_finalizer_starts_a_child"]
    assert (
        "binds a socket"
        in errors["test_an_unmarked_test_after_which_the_unit_tests_module_fixture_ends"]
    )
    result.assert_outcomes(passed=6, errors=3)
