"""Several processes on one database: the concurrency table of ``make chaos``.

``python -m bench.concurrency [--readers 4] [--out DIR]`` runs three scenarios with real
``earthvec`` processes on the EuroSAT chips in ``data/`` and prints one row each (writes
``concurrency.json``):

* **two writers**: three builds of one database start together; one with ``--no-wait`` must
  be refused naming the writer's pid, the other waits for the first and adds its rows; the
  result must hold every row once and two generations;
* **readers during builds**: ``--readers`` processes loop on ``earthvec sql`` (row count and
  distinct ``(h3, datetime)`` count) and ``earthvec similar`` while two builds publish; no
  call may fail and every count a reader sees must be a whole published generation (the
  count before or after a build, never a mix, never a duplicate);
* **two explorers**: two processes open a database whose index is missing (as two explorers
  do) and race to build it; both must answer with every row, the index must end fresh and no
  temporary file may be left.

The tests in ``tests/app/test_concurrency.py`` run the same scenarios with their helpers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EUROSAT = REPO / "data" / "eurosat_ms" / "tif"
STATS = ("--sensor", "sentinel2-l1c-eurosat", "--model", "stats")

READER = """
import json, sys, time
from pathlib import Path
from app.cli.main import main
from embedder import contract
db, out, stop, kind = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
cell = contract.read_table(db, columns=["h3"]).column(0)[0].as_py()
import contextlib, io
with out.open("w") as fh:
    while not stop.exists():
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            if kind == "sql":
                q = "SELECT count(*) AS n, count(DISTINCT (h3, datetime)) AS u FROM embeddings"
                rc = main(["sql", db, q, "--format", "json"])
            else:
                rc = main(["similar", db, "--cell", format(cell, "x"), "-k", "3", "--format", "json"])
        rows = json.loads(buf.getvalue()) if rc == 0 else None
        fh.write(json.dumps({"rc": rc, "rows": rows}) + "\\n")
        fh.flush()
"""

GO = """
import sys, time
from pathlib import Path
from app.cli.main import main
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.02)
sys.exit(main(sys.argv[2:]))
"""

OPENER = """
import sys
from index.store import open_index
from app.logic.rows import load_rows
for _ in range(3):
    vi = open_index(sys.argv[1])
    rows = load_rows(sys.argv[1])
    assert len(vi) == len(rows.latest), (len(vi), len(rows.latest))
print(len(vi))
"""


def env() -> dict[str, str]:
    """The environment of every process: this checkout first, no progress bars."""
    return dict(os.environ, PYTHONPATH=str(REPO), TQDM_DISABLE="1")


def build(
    db: Path,
    *classes: str,
    extra: tuple[str, ...] = (),
    go: Path | None = None,
    model: tuple[str, ...] = STATS,
) -> subprocess.Popen[str]:
    """``earthvec build`` of EuroSAT ``classes`` in a process; with ``go`` it starts when ``go`` exists."""
    src = [a for c in classes for a in ("--source", str(EUROSAT / c / "*.tif"))]
    args = ["build", str(db), *src, *model, *extra]
    cmd = [sys.executable, "-c", GO, str(go), *args] if go else [sys.executable, "-m", "app.cli.main", *args]
    return subprocess.Popen(
        cmd, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_lock(db: Path, proc: subprocess.Popen[str]) -> None:
    """Until ``proc`` holds the database's writer lock (or has ended)."""
    from embedder.storage import read_holder

    for _ in range(600):
        if read_holder(db) is not None or proc.poll() is not None:
            return
        time.sleep(0.05)


def count(db: Path) -> int:
    """Rows of the published generation."""
    from embedder import contract

    return contract.read_table(db, columns=[contract.H3]).num_rows


def lines(path: Path) -> int:
    """Lines a reader has written so far."""
    return len(path.read_text().splitlines()) if path.exists() else 0


def until(cond: Callable[[], bool], timeout: float = 240) -> None:
    """Wait for ``cond``; raise after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("readers stalled")
        time.sleep(0.1)


def two_writers(work: Path) -> dict[str, Any]:
    """Three builds at once: one refused (``--no-wait``), one waiting; every row once."""
    from embedder import contract
    from embedder.storage import read_holder

    db = work / "db"
    go = [work / f"go{i}" for i in range(3)]
    tex = ("--sensor", "sentinel2-l1c-eurosat")  # the default model: a few seconds for 145 chips
    first = build(db, "Forest", "River", "Pasture", "SeaLake", go=go[0], model=tex)
    refused = build(db, "Highway", extra=("--no-wait",), go=go[1], model=tex)
    second = build(db, "Highway", go=go[2], model=tex)  # waits for the first, then adds its rows
    time.sleep(3)  # all three have imported earthvec
    go[0].touch()
    wait_for_lock(db, first)
    go[1].touch()
    go[2].touch()
    _, err_refused = refused.communicate(timeout=300)
    _, err1 = first.communicate(timeout=300)
    _, err2 = second.communicate(timeout=300)
    t = contract.read_table(db)
    keys = list(zip(t.column(contract.H3).to_pylist(), t.column(contract.DATETIME).to_pylist(), strict=True))
    sources = {Path(s[0]).parent.name for s in t.column(contract.SOURCE).to_pylist()}
    return {
        "scenario": "two writers",
        "processes": 3,
        "exit_codes": [first.returncode, refused.returncode, second.returncode],
        "refused_names_the_writer": f"is being written by pid {first.pid}" in err_refused
        and "--no-wait" in err_refused,
        "second_waited": f"waiting for the writer of {db}" in err2,
        "rows": len(keys),
        "rows_expected": 40 + 35 + 30 + 40 + 34,
        "duplicates": len(keys) - len(set(keys)),
        "sources": sorted(sources),
        "generations": manifest.generation if (manifest := contract.read_manifest(db)) else None,
        "lock_left": read_holder(db) is not None,
        "stderr": (err1 + err2)[-2000:],
    }


def readers_during_builds(work: Path, kinds: list[str], builds: list[tuple[str, ...]]) -> dict[str, Any]:
    """Readers loop on ``sql``/``similar`` while ``builds`` publish, one after another."""
    db = work / "db"
    if build(db, "Forest").wait(timeout=300) != 0:
        raise RuntimeError("the first build failed")
    counts = {count(db)}
    stop = work / "stop"
    readers = []
    for i, kind in enumerate(kinds):
        out = work / f"reader{i}.jsonl"
        cmd = [sys.executable, "-c", READER, str(db), str(out), str(stop), kind]
        readers.append(
            (kind, out, subprocess.Popen(cmd, cwd=REPO, env=env(), stderr=subprocess.PIPE, text=True))
        )
    until(lambda: all(lines(out) >= 1 for _, out, _ in readers))
    build_rc = []
    for more in builds:
        b = build(db, *more)
        b.communicate(timeout=300)
        build_rc.append(b.returncode)
        counts.add(count(db))
    after = [lines(out) for _, out, _ in readers]
    until(lambda: all(lines(out) > n + 1 for (_, out, _), n in zip(readers, after, strict=True)))
    stop.touch()
    seen: dict[str, list[Any]] = {"sql": [], "similar": []}
    failed, errors = 0, ""
    for kind, out, proc in readers:
        _, err = proc.communicate(timeout=300)
        got = [json.loads(x) for x in out.read_text().splitlines()]
        failed += sum(x["rc"] != 0 for x in got) + (proc.returncode != 0)
        errors += err[-1000:] if proc.returncode or any(x["rc"] for x in got) else ""
        seen[kind] += [x["rows"] for x in got if x["rc"] == 0]
    sql_counts = {r[0]["n"] for r in seen["sql"]}
    return {
        "scenario": f"{len(kinds)} readers during {len(builds)} builds",
        "processes": len(kinds) + len(builds) + 1,
        "build_exit_codes": build_rc,
        "generations_published": len(counts),
        "reader_calls": sum(len(v) for v in seen.values()) + failed,
        "reader_failures": failed,
        "partial_generations_seen": len(sql_counts - counts),
        "duplicates_seen": sum(r[0]["n"] != r[0]["u"] for r in seen["sql"]),
        "read_before_and_after": min(counts) in sql_counts and max(counts) in sql_counts,
        "similar_short_answers": sum(len(r) != 3 for r in seen["similar"]),
        "stderr": errors[-2000:],
    }


def two_explorers(work: Path, db: Path | None = None) -> dict[str, Any]:
    """Two processes open a database without an index and race to build it."""
    from index.store import index_state

    target = work / "db"
    if db is None:
        if build(target, *[p.name for p in sorted(EUROSAT.iterdir())], extra=("--no-index",)).wait(300) != 0:
            raise RuntimeError("the EuroSAT build failed")
    else:
        shutil.copytree(db, target)
    expected = count(target)
    cmd = [sys.executable, "-c", OPENER, str(target)]
    pipe = subprocess.PIPE
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=pipe, stderr=pipe, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    return {
        "scenario": "two explorers open one database",
        "processes": 2,
        "exit_codes": [p.returncode for p in procs],
        "rows_each_saw": [o.strip() for o, _ in outs],
        "rows_expected": str(expected),
        "index_state": index_state(target),
        "tmp_left": len(list(target.rglob("*.tmp"))),
        "stderr": "".join(e for _, e in outs)[-2000:],
    }


def passed(row: dict[str, Any]) -> bool:
    """Whether a scenario's row shows what the module docstring promises."""
    if row["scenario"] == "two writers":
        return (
            row["exit_codes"] == [0, 1, 0]
            and row["refused_names_the_writer"]
            and row["second_waited"]
            and row["rows"] == row["rows_expected"]
            and row["duplicates"] == 0
            and row["generations"] == 2
            and not row["lock_left"]
        )
    if row["scenario"].startswith("two explorers"):
        return (
            row["exit_codes"] == [0, 0]
            and set(row["rows_each_saw"]) == {row["rows_expected"]}
            and row["index_state"] == "fresh"
            and row["tmp_left"] == 0
        )
    return (
        all(rc == 0 for rc in row["build_exit_codes"])
        and row["reader_failures"] == 0
        and row["partial_generations_seen"] == 0
        and row["duplicates_seen"] == 0
        and row["read_before_and_after"]
        and row["similar_short_answers"] == 0
    )


def render(rows: list[dict[str, Any]]) -> str:
    """The printed table."""
    out = [
        f"{'scenario':34s} {'procs':>5s} {'reader calls':>12s} {'failures':>8s} {'partial':>7s} "
        f"{'dups':>4s} {'result':>6s}"
    ]
    for r in rows:
        calls, fails = r.get("reader_calls", "-"), r.get("reader_failures", "-")
        out.append(
            f"{r['scenario']:34s} {r['processes']:5d} {calls!s:>12s} {fails!s:>8s} "
            f"{r.get('partial_generations_seen', 0)!s:>7s} "
            f"{r.get('duplicates', r.get('duplicates_seen', 0))!s:>4s} {'ok' if passed(r) else 'FAIL':>6s}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, print the table, write ``concurrency.json``; exit 1 if one failed."""
    p = argparse.ArgumentParser(prog="python -m bench.concurrency", description=__doc__.split("\n")[0])
    p.add_argument("--readers", type=int, default=4, help="reader processes during the builds")
    p.add_argument("--out", default="bench_results", help="folder for concurrency.json")
    a = p.parse_args(argv)
    kinds = [("sql", "similar")[i % 2] for i in range(a.readers)]
    rows = []
    for name, fn in (
        ("writers", two_writers),
        ("readers", lambda w: readers_during_builds(w, kinds, [("River",), ("Highway", "SeaLake")])),
        ("explorers", two_explorers),
    ):
        with tempfile.TemporaryDirectory(prefix=f"evconc-{name}-") as tmp:
            t0 = time.perf_counter()
            row = fn(Path(tmp))
            row["seconds"] = round(time.perf_counter() - t0, 1)
            row["passed"] = passed(row)
            rows.append(row)
            print(
                f"{row['scenario']}: {'ok' if row['passed'] else 'FAIL'} in {row['seconds']} s",
                file=sys.stderr,
            )
    print(render(rows))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "concurrency.json").write_text(json.dumps({"rows": rows}, indent=2))
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
