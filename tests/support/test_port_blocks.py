"""The port allocator's pure rules (support/ports.py): the kernel's ephemeral range read, the
blocks handed out lying wholly outside it, a lock folder another user could write refused, and
a machine whose range leaves no block told so. In process; taking real ports (bind probes,
locks held across processes): test_ports.py."""

from __future__ import annotations

import os

import pytest

from support import ports
from support.ports import BLOCK, PortAllocator, candidate_blocks, ephemeral_range

pytestmark = pytest.mark.unit


def test_the_ephemeral_range_is_read_and_defaults_to_linuxs():
    assert ephemeral_range("32768\t60999\n") == (32768, 60999)
    assert ephemeral_range("1024 65535") == (1024, 65535)
    assert ephemeral_range("garbage") == (32768, 60999)


def test_blocks_lie_wholly_outside_the_ephemeral_range():
    blocks = candidate_blocks((32768, 60999))
    assert blocks, "the default range leaves room below it"
    for start in blocks:
        assert start + BLOCK - 1 < 32768 or start > 60999
    assert 32700 not in blocks  # 32700..32799 straddles 32768
    assert candidate_blocks((ports.LOWEST, 65535)) == []


def test_a_lock_folder_another_user_could_write_is_not_trusted(tmp_path):
    shared = tmp_path / "ports"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # world-writable, not sticky: anyone could plant links in it
    assert ports.trusted_lock_dir(shared) == tmp_path / f"ports-{os.getuid()}"
    sticky = tmp_path / "sticky"
    assert ports.trusted_lock_dir(sticky) == sticky  # made here: ours, sticky as /tmp
    assert sticky.stat().st_mode & 0o1777 == 0o1777


def test_a_machine_whose_ephemeral_range_leaves_no_block_says_so(monkeypatch):
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (1024, 65535))
    with pytest.raises(RuntimeError, match="ip_local_port_range"):
        PortAllocator()
