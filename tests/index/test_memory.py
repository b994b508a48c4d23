from pathlib import Path

import psutil

from index.memory import available_memory, cgroup_available


def test_cgroup_v2_limit_caps_the_estimate(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text("1000000\n")
    (tmp_path / "memory.current").write_text("400000\n")
    assert cgroup_available(tmp_path) == 600000
    assert available_memory(tmp_path) == min(600000, psutil.virtual_memory().available)


def test_unlimited_cgroup_uses_psutil(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text("max\n")
    assert cgroup_available(tmp_path) is None
    assert abs(available_memory(tmp_path) - psutil.virtual_memory().available) < 512 * 2**20


def test_cgroup_v1_limit(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("2000\n")
    (tmp_path / "memory" / "memory.usage_in_bytes").write_text("500\n")
    assert cgroup_available(tmp_path) == 1500
