"""Untrusted SQL in a child process: ``SqlWorker(db).query("SELECT ...")``.

The child (``python -m index.sql_worker DB ...``) opens the database with
:func:`index.sql.connect` ``(read_only=True)`` (DuckDB's sandbox, see :mod:`index.sql_guard`),
then confines itself with operating-system limits before it reads any query:

* an address-space limit of its size after start-up plus the DuckDB memory limit plus
  :data:`index.sql_guard.HEADROOM_BYTES`: scalar functions that allocate outside DuckDB's
  buffer manager (``repeat('x', 2000000000)``, ``list_resize``) fail with an
  out-of-memory error instead of growing the caller;
* a file-size limit of 0 bytes (``RLIMIT_FSIZE``): even a write that slipped past DuckDB's
  sandbox could not put a byte into any file;
* no core dumps.

The parent sends one JSON line per query and reads a JSON header plus an Arrow IPC stream
back. A query past its time limit is interrupted inside the child; if the child does not
answer ``grace_s`` later, or dies (a crash, the kernel's out-of-memory killer), the parent
kills it, says so in one line, and starts a fresh child for the next query: the caller (the
explorer, ``earthvec sql``) stays up. The limits apply on Linux (and address space and file
size on other Unix systems where the kernel enforces them); elsewhere DuckDB's sandbox alone
guards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.ipc  # noqa: F401 - imported before the file-size limit (no lazy .pyc writes)

from embedder import errors
from embedder.errors import EarthvecError, QueryError
from index.sql_guard import HEADROOM_BYTES, Limits, first_line, friendly_error, parse_size

START_TIMEOUT_S = 120.0
"""How long the parent waits for a child to open the database."""

MAX_RESULT_BYTES = 256 * 2**20
"""Largest result a query may send back (the rows limit alone allows huge values)."""


def _vm_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def confine(limits: Limits) -> list[str]:
    """Apply the operating-system limits to this process; returns the names of those applied."""
    try:
        import resource
        import signal
    except ImportError:  # Windows: DuckDB's own sandbox only
        return []
    done = []
    vm = _vm_bytes()
    if vm is not None:
        cap = vm + parse_size(limits.memory) + HEADROOM_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        done.append("address_space")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, not kills
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return [*done, "file_size", "core"]


def _send(out: IO[bytes], head: dict[str, Any], payload: bytes = b"") -> None:
    out.write(json.dumps({**head, "nbytes": len(payload)}).encode() + b"\n")
    if payload:
        out.write(payload)
    out.flush()


def _error_head(exc: BaseException) -> dict[str, Any]:
    kind = type(exc).__name__ if isinstance(exc, EarthvecError) else "QueryError"
    return {
        "ok": False,
        "error": str(exc) if isinstance(exc, EarthvecError) else first_line(exc),
        "type": kind,
    }


def _serve(args: argparse.Namespace) -> int:
    from index.sql import connect
    from index.sql_guard import run_limited

    out, inp = sys.stdout.buffer, sys.stdin.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the protocol
    limits = Limits(memory=args.memory, threads=args.threads, timeout_s=args.timeout or None, rows=args.rows)
    try:
        con = connect(args.db, read_only=True, limits=limits)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        _send(
            out,
            _error_head(exc)
            if isinstance(exc, EarthvecError)
            else {
                "ok": False,
                "type": "QueryError",
                "error": f"cannot open {args.db} for SQL: {first_line(exc)}",
            },
        )
        return 1
    applied = confine(limits)
    _send(out, {"ok": True, "ready": True, "pid": os.getpid(), "confined": applied})
    for line in inp:
        try:
            req = json.loads(line)
            rows = min(int(req.get("rows") or limits.rows), limits.rows)
            t = req.get("timeout_s") or limits.timeout_s
            t = min(t, limits.timeout_s) if limits.timeout_s and t else t
            table, cut = run_limited(con, str(req["sql"]), Limits(limits.memory, limits.threads, t, rows))
            if table.nbytes > MAX_RESULT_BYTES:
                cap = MAX_RESULT_BYTES // 2**20
                raise QueryError(
                    f"the result is {table.nbytes / 2**20:.0f} MB, more than the {cap} MB a query may "
                    "return; select fewer columns or rows (LIMIT), or aggregate"
                )
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as w:
                w.write_table(table)
            _send(out, {"ok": True, "cut": cut}, sink.getvalue().to_pybytes())
        except Exception as exc:  # noqa: BLE001 - every failure goes back as one line
            _send(out, _error_head(exc if isinstance(exc, EarthvecError) else friendly_error(exc, limits)))
    return 0


class SqlWorker:
    """A child process that runs read-only SQL on one database (see the module docstring)."""

    def __init__(self, db: str | Path, limits: Limits | None = None, *, grace_s: float = 5.0) -> None:
        """Start the child and wait until the database is open.

        Raises:
            InputNotFoundError, ModelMismatchError, ...: the database cannot be opened
                (the child's error, same class and message).
        """
        self.db = Path(db).resolve()
        self.limits = limits or Limits()
        self.grace_s = grace_s
        self.restarts = 0
        self.confined: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: list[bytes] = []
        self._lock = threading.Lock()
        self._start()

    @property
    def pid(self) -> int | None:
        """The child's process id (None when none runs)."""
        return self._proc.pid if self._proc is not None else None

    def _start(self) -> None:
        import index

        root = str(Path(index.__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        lim = self.limits
        cmd = [
            sys.executable,
            "-m",
            "index.sql_worker",
            str(self.db),
            "--memory",
            lim.memory,
            "--threads",
            str(lim.threads),
            "--timeout",
            str(lim.timeout_s or 0),
            "--rows",
            str(lim.rows),
        ]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(self.db) if self.db.is_dir() else None,
            env=env,
        )
        self._stderr = []
        threading.Thread(target=self._drain, args=(self._proc,), daemon=True).start()
        head, _ = self._read(START_TIMEOUT_S)
        if head is None or not head.get("ok"):
            self._kill()
            raise self._error(head, "could not start the SQL worker")
        self.confined = list(head.get("confined", []))

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        f = proc.stderr
        assert f is not None
        try:
            for chunk in iter(lambda: os.read(f.fileno(), 4096), b""):
                self._stderr = (self._stderr + [chunk])[-4:]
        except OSError:
            pass
        finally:
            f.close()

    def _read(self, timeout_s: float) -> tuple[dict[str, Any] | None, bytes]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        box: dict[str, Any] = {}

        def read() -> None:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line:
                return
            head = json.loads(line)
            box["payload"] = proc.stdout.read(int(head.get("nbytes", 0))) if head.get("nbytes") else b""
            box["head"] = head

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout_s)
        if t.is_alive():
            self._kill()
            t.join(5.0)
            box["timed_out"] = True
        head = box.get("head")
        if head is None:
            return ({"timed_out": True} if box.get("timed_out") else None), b""
        return head, box.get("payload", b"")

    def _error(self, head: dict[str, Any] | None, what: str) -> EarthvecError:
        if head is not None and "error" in head:
            cls = getattr(errors, str(head.get("type")), QueryError)
            if not (isinstance(cls, type) and issubclass(cls, EarthvecError)):
                cls = QueryError
            return cls(head["error"])
        tail = b"".join(self._stderr).decode(errors="replace").strip().splitlines()
        detail = f": {tail[-1]}" if tail else ""
        return QueryError(f"{what} for {self.db}{detail}")

    def query(
        self, sql: str, *, rows: int | None = None, timeout_s: float | None = None
    ) -> tuple[pa.Table, bool]:
        """Run one read-only statement in the child.

        Returns:
            The result (at most ``rows`` rows, at most the worker's limit) and whether rows
            were cut off.

        Raises:
            QueryError: a refused statement, a DuckDB error, the time or the memory limit
                (the child is then replaced by a fresh one).
        """
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None
            t = timeout_s or self.limits.timeout_s
            try:
                proc.stdin.write(json.dumps({"sql": sql, "rows": rows, "timeout_s": t}).encode() + b"\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                self._restart_later()
                raise QueryError("the SQL worker had stopped; run the query again") from None
            head, payload = self._read((t or 1e9) + self.grace_s)
            if head is None or head.get("timed_out"):
                code = proc.poll()
                self._restart_later()
                if head is not None:
                    raise QueryError(
                        f"the query ran past the time limit {t or 0:g} s and did not stop; its worker "
                        "process was killed; filter (WHERE), aggregate or LIMIT it"
                    )
                raise QueryError(
                    f"the query stopped the SQL worker process (exit code {code}): it most likely "
                    f"needed more memory than the limit {self.limits.memory}; filter (WHERE), "
                    "aggregate or LIMIT it (a fresh worker runs the next query)"
                )
            if not head.get("ok"):
                raise self._error(head, "SQL failed")
            table = pa.ipc.open_stream(payload).read_all()
            return table, bool(head.get("cut"))

    def _restart_later(self) -> None:
        self._kill()
        self.restarts += 1

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        for f in (proc.stdin, proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass

    def close(self) -> None:
        """Stop the child (it also stops by itself when this process ends)."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.close()
                    proc.wait(2)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self._kill()

    def __enter__(self) -> SqlWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self._kill()


def main(argv: list[str] | None = None) -> int:
    """Child entry point: ``python -m index.sql_worker DB --memory 1GB ...``."""
    p = argparse.ArgumentParser(prog="python -m index.sql_worker")
    p.add_argument("db")
    p.add_argument("--memory", default=Limits().memory)
    p.add_argument("--threads", type=int, default=Limits().threads)
    p.add_argument("--timeout", type=float, default=0.0)
    p.add_argument("--rows", type=int, default=Limits().rows)
    return _serve(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
