"""Running one killable ``earthvec`` process for :mod:`bench.chaos` (a process group, SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Watch:
    """When ``check()`` first held during a run (seconds from its start)."""

    check: Callable[[], bool]
    at: float | None = None


def run(
    argv: list[str],
    kill_after: float | None = None,
    log: Path | None = None,
    env_extra: dict[str, str] | None = None,
    watch: Watch | None = None,
) -> bool:
    """Run ``argv`` from the repository root; True when it finished, False when it was killed.

    Args:
        argv: the command.
        kill_after: SIGKILL its process group after this many seconds.
        log: file collecting its output.
        env_extra: extra environment (``EARTHVEC_KILL_AT`` makes it kill itself at a point).
        watch: records when its condition first holds (the clean run: when the lock is taken).

    Raises:
        RuntimeError: the process failed by itself (its output is in the message).
    """
    env = dict(os.environ, **(env_extra or {}))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["TQDM_DISABLE"] = "1"
    out = (log or Path(os.devnull)).open("ab")
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=out, start_new_session=True)
        while True:
            step = 0.02 if watch is not None else None
            if kill_after is not None:
                left = kill_after - (time.perf_counter() - t0)
                step = max(0.0, min(step, left)) if step is not None else max(0.0, left)
            try:
                rc = proc.wait(timeout=step)
                break
            except subprocess.TimeoutExpired:
                pass
            if watch is not None and watch.at is None and watch.check():
                watch.at = time.perf_counter() - t0
            if kill_after is not None and time.perf_counter() - t0 >= kill_after:
                os.killpg(proc.pid, signal.SIGKILL)  # the process and any worker it forked
                proc.wait()
                return False
    finally:
        out.close()
    if rc == -signal.SIGKILL:
        return False
    if rc != 0:
        tail = log.read_text()[-2000:] if log else ""
        raise RuntimeError(f"{' '.join(argv)} exited with {rc}:\n{tail}")
    return True


def tmp_files(db: Path) -> int:
    """Temporary files (``.<name>.<hex>.tmp``) left anywhere in ``db``."""
    return sum(1 for p in db.rglob("*.tmp") if p.name.startswith("."))
