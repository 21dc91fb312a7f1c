"""Threads follow the container's CPU quota (cgroup v2 or v1), not the node's core count."""

from __future__ import annotations

import functools

import pytest

from predictor.runtime import cpus
from predictor.runtime.cpus import quota_cpus

pytestmark = pytest.mark.unit


def test_cgroup_v2_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert quota_cpus(tmp_path) == 1.5


def test_cgroup_v2_without_a_limit(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert quota_cpus(tmp_path) is None


def test_cgroup_v1_quota(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert quota_cpus(tmp_path) == 0.5
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert quota_cpus(tmp_path) is None


def cgroup_v2(root, quota: str, period: str = "100000"):
    (root / "cpu.max").write_text(f"{quota} {period}\n")
    return root


def cgroup_v1(root, quota: str, period: str = "100000"):
    (root / "cpu").mkdir(exist_ok=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(f"{period}\n")
    return root


@pytest.fixture
def on_a_host_of(monkeypatch):
    """available_cpus() on a host of `cores` CPUs (its affinity mask), reading the cgroup files
    under `root` (quota_cpus' own parsing, from a folder instead of /sys/fs/cgroup)."""

    def host(cores: int, root):
        monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(cores)))
        monkeypatch.setattr(cpus, "quota_cpus", functools.partial(quota_cpus, root))
        return cpus.available_cpus()

    return host


@pytest.mark.parametrize("cgroup", [cgroup_v2, cgroup_v1], ids=["v2", "v1"])
@pytest.mark.parametrize(
    ("quota", "cores", "expected"),
    [
        ("200000", 64, 2),  # a 2-CPU limit on a 64-core node: 2 threads, not 64
        ("250000", 64, 3),  # 2.5 CPUs: a third thread uses the half (rounded up, not down)
        ("1600000", 8, 8),  # a quota above the cores this process may run on: the cores
        ("50000", 64, 1),  # quota < period (half a CPU): one thread, not none
        ("1000", 64, 1),  # the kernel's smallest quota, a hundredth of a CPU: still one
    ],
)
def test_the_cgroup_quota_caps_the_cores(tmp_path, on_a_host_of, cgroup, quota, cores, expected):
    assert on_a_host_of(cores, cgroup(tmp_path, quota)) == expected


@pytest.mark.parametrize("cgroup", [cgroup_v2, cgroup_v1], ids=["v2", "v1"])
def test_without_a_quota_every_core_is_used(tmp_path, on_a_host_of, cgroup):
    assert on_a_host_of(12, cgroup(tmp_path, "max" if cgroup is cgroup_v2 else "-1")) == 12
    assert on_a_host_of(12, tmp_path / "no-cgroup-here") == 12
