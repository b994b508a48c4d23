"""How much memory this process may use: available RAM, capped by a cgroup (container) limit.

``psutil.virtual_memory().available`` is the machine's view; inside a container the cgroup
limit (``memory.max`` for cgroup v2, ``memory.limit_in_bytes`` for v1) minus the group's
current usage can be much smaller, and exceeding it gets the process killed. The estimate
is the smaller of the two.
"""

from __future__ import annotations

from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
_V1_UNLIMITED = 1 << 60  # v1 reports "no limit" as a huge page-rounded number


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _own_cgroup(root: Path) -> Path:
    """This process's cgroup v2 folder (``/proc/self/cgroup`` line ``0::/path``), else ``root``."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                p = root / line[3:].lstrip("/")
                if p.is_dir():
                    return p
    except OSError:
        pass
    return root


def cgroup_available(root: Path = CGROUP_ROOT) -> int | None:
    """Bytes left under this process's cgroup memory limit, or ``None`` without a limit.

    Args:
        root: the cgroup file-system mount (a parameter so tests can give a fake tree).
    """
    v2 = _own_cgroup(root)
    limit = _read_int(v2 / "memory.max")
    if limit is not None:
        used = _read_int(v2 / "memory.current") or 0
        return max(0, limit - used)
    limit = _read_int(root / "memory" / "memory.limit_in_bytes")
    if limit is not None and limit < _V1_UNLIMITED:
        used = _read_int(root / "memory" / "memory.usage_in_bytes") or 0
        return max(0, limit - used)
    return None


def available_memory(root: Path = CGROUP_ROOT) -> int:
    """Bytes of RAM available now: psutil's ``available``, capped by the cgroup limit if any."""
    avail = int(psutil.virtual_memory().available)
    cg = cgroup_available(root)
    return min(avail, cg) if cg is not None else avail
