"""One writer at a time: an exclusive ``flock`` on ``DB/.lock``.

The kernel drops a ``flock`` when its holder dies (kill -9 included), so a lock can never
stay stuck; the holder's record in the file (pid, command, host, start time) is only
there to tell a waiting writer who it waits for, and, left behind by a killed writer, to
report that the previous write did not finish. A second writer waits (printing the
holder once) or, with ``wait=False`` (``--no-wait``), fails at once naming the holder.

The lock is re-entrant within a process (a build that publishes its index takes it
once). ``flock`` locks follow the open file, which ``fork`` shares: worker processes
forked while it is held must call :func:`forget_inherited_locks` first thing, or they
would keep the database locked after the writer died.

Limits: ``flock`` works between processes of one machine; on NFS and other network file
systems it may not lock across hosts, so one database must not be written from two hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import TextIO

from embedder.contract import lock_path, make_dirs
from embedder.contract.writer import LockHolder
from embedder.errors import DatabaseLockedError

log = logging.getLogger(__name__)

__all__ = ["DatabaseLockedError", "DbLock", "forget_inherited_locks", "held_by_me", "read_holder"]

_HELD: dict[Path, list[int]] = {}  # database -> [fd, depth] held by this process
_HELD_LOCK = threading.RLock()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_holder(db: str | Path) -> LockHolder | None:
    """The record in ``DB/.lock`` (the current or the last, dead, holder), if any."""
    try:
        return LockHolder.parse(lock_path(db).read_bytes())
    except FileNotFoundError:
        return None


def held_by_me(db: str | Path) -> bool:
    """Whether this process holds the lock of ``db``."""
    with _HELD_LOCK:
        return Path(db).resolve() in _HELD


class DbLock:
    """The writer lock of one database (a context manager).

    Args:
        db: database folder (created when missing).
        command: what the writer does (shown to other writers), e.g. ``"earthvec build DB"``.
        wait: block until the lock is free (printing who holds it) instead of failing.
        out: where the waiting message goes (default stderr).
    """

    def __init__(self, db: str | Path, command: str = "", *, wait: bool = True, out: TextIO | None = None):
        self.db = Path(db)
        self.command = command or " ".join(
            os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv)
        )
        self.wait = wait
        self.out = out
        self.previous: LockHolder | None = None
        self._key: Path | None = None

    def acquire(self) -> DbLock:
        """Take the lock (see the class docstring).

        Raises:
            DatabaseLockedError: held by another process and ``wait`` is false.
        """
        make_dirs(self.db)
        key = self.db.resolve()
        with _HELD_LOCK:
            if key in _HELD:
                _HELD[key][1] += 1
                self._key = key
                return self
        path = lock_path(self.db)
        while True:
            fd = self._lock_fd(path)
            try:  # the lock file may have been removed (a failed first write) while we waited
                if os.fstat(fd).st_ino == os.stat(path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
            make_dirs(self.db)
        try:
            self.previous = LockHolder.parse(os.pread(fd, 4096, 0))
            if self.previous is not None:
                log.warning(
                    "the previous writer of %s, %s, did not finish (killed?); its unpublished work "
                    "is resumed or swept, the published database is intact",
                    self.db,
                    self.previous.describe(),
                )
            os.ftruncate(fd, 0)
            os.pwrite(fd, LockHolder.me(self.command).to_json(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        with _HELD_LOCK:
            _HELD[key] = [fd, 1]
        self._key = key
        return self

    def _lock_fd(self, path: Path) -> int:
        """Open ``path`` and take the exclusive ``flock`` (waiting or not, see the class docstring)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = read_holder(self.db)
                who = holder.describe() if holder else "another process"
                if holder and holder.host == socket.gethostname() and not _pid_alive(holder.pid):
                    who += " [that pid is gone: a process it forked still holds the lock]"
                if not self.wait:
                    raise DatabaseLockedError(
                        f"{self.db} is being written by {who}; wait for it to finish, or run again "
                        "without --no-wait to wait for it"
                    ) from None
                print(f"earthvec: waiting for the writer of {self.db}: {who}", file=self.out or sys.stderr)
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def release(self) -> None:
        """Let go (the outermost release empties the holder record and unlocks)."""
        key, self._key = self._key, None
        if key is None:
            return
        with _HELD_LOCK:
            entry = _HELD[key]
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _HELD[key]
        fd = entry[0]
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> DbLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def forget_inherited_locks() -> None:
    """In a forked child: close the lock files inherited from the parent (keeps their locks).

    The flock belongs to the open file the parent and child share; closing the child's copy
    leaves the parent's lock in place and lets it go when the parent dies.
    """
    with _HELD_LOCK:
        for fd, _ in _HELD.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        _HELD.clear()
