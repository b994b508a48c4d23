"""The writer lock across real processes, and the durable write order (fsync, rename, fsync)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from embedder import contract
from embedder.contract import io as cio
from embedder.errors import DatabaseLockedError
from embedder.storage import DbLock, held_by_me, read_holder

REPO = Path(__file__).resolve().parents[3]
HOLD = (
    "import sys, time; from embedder.storage import DbLock; "
    "l = DbLock(sys.argv[1], 'earthvec build holder-test').acquire(); print('held', flush=True); "
    "time.sleep(float(sys.argv[2])); l.release()"
)


def _holder(db: Path, seconds: float) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(db), str(seconds)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_fails_with_no_wait_naming_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "db"
    proc = _holder(db, 30)
    try:
        with pytest.raises(
            DatabaseLockedError, match=rf"pid {proc.pid} .*earthvec build holder-test.*--no-wait"
        ):
            DbLock(db, "second", wait=False).acquire()
        holder = read_holder(db)
        assert holder is not None and holder.pid == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_waiting_writer_shows_the_holder_then_proceeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db"
    proc = _holder(db, 1.5)
    t0 = time.perf_counter()
    with DbLock(db, "second", wait=True):
        waited = time.perf_counter() - t0
        assert held_by_me(db) and read_holder(db).pid == os.getpid()
    proc.wait()
    assert waited > 0.3
    assert f"waiting for the writer of {db}: pid {proc.pid}" in capsys.readouterr().err
    assert read_holder(db) is None  # released cleanly: no record left


def test_killed_writer_releases_the_lock_and_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "db"
    proc = _holder(db, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    dead = read_holder(db)
    assert dead is not None and dead.pid == proc.pid  # the record survives the kill ...
    with caplog.at_level(logging.WARNING), DbLock(db, "next", wait=False) as lock:  # ... the lock does not
        assert lock.previous == dead
    assert f"pid {proc.pid}" in caplog.text and "did not finish" in caplog.text


def test_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with DbLock(db, "outer", wait=False), DbLock(db, "inner", wait=False):
        assert held_by_me(db)
    assert not held_by_me(db)


def test_files_are_flushed_before_and_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(a: str, b: str) -> None:
        events.append("replace")
        real_replace(a, b)

    monkeypatch.setattr(cio.os, "fsync", fsync)
    monkeypatch.setattr(cio.os, "replace", replace)
    contract.write_table_atomic(pa.table({"x": [1, 2]}), tmp_path / "a" / "t.parquet")
    assert events[-3:] == ["fsync-file", "replace", "fsync-dir"]
    assert "fsync-dir" in events[:-3]  # the new folder "a" was flushed into its parent too
    events.clear()
    contract.atomic_write_bytes(tmp_path / "m.json", b"{}")
    assert events == ["fsync-file", "replace", "fsync-dir"]
    assert not list(tmp_path.rglob("*.tmp"))
