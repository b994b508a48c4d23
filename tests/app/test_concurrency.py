"""Several processes on one database: two writers, a writer and four readers, two explorers' readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embedder import contract
from embedder.storage import read_holder

REPO = Path(__file__).resolve().parents[2]
EUROSAT = REPO / "data" / "eurosat_ms" / "tif"
STATS = ["--sensor", "sentinel2-l1c-eurosat", "--model", "stats"]

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


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), TQDM_DISABLE="1")


GO = """
import sys, time
from pathlib import Path
from app.cli.main import main
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.02)
sys.exit(main(sys.argv[2:]))
"""


def _build(
    db: Path,
    *classes: str,
    extra: tuple[str, ...] = (),
    go: Path | None = None,
    model: tuple[str, ...] = STATS,
) -> subprocess.Popen[str]:
    """``earthvec build`` in a process; with ``go`` it imports first and starts when ``go`` exists."""
    src = [a for c in classes for a in ("--source", str(EUROSAT / c / "*.tif"))]
    args = ["build", str(db), *src, *model, *extra]
    cmd = [sys.executable, "-c", GO, str(go), *args] if go else [sys.executable, "-m", "app.cli.main", *args]
    return subprocess.Popen(
        cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for_lock(db: Path, proc: subprocess.Popen[str]) -> None:
    for _ in range(600):
        if read_holder(db) is not None or proc.poll() is not None:
            return
        time.sleep(0.05)


def _count(db: Path) -> int:
    return contract.read_table(db, columns=[contract.H3]).num_rows


def test_two_builds_on_one_database(tmp_path: Path) -> None:
    db = tmp_path / "db"
    go = [tmp_path / f"go{i}" for i in range(3)]
    tex = ("--sensor", "sentinel2-l1c-eurosat")  # the default model: a few seconds for 145 chips
    first = _build(db, "Forest", "River", "Pasture", "SeaLake", go=go[0], model=tex)
    refused = _build(db, "Highway", extra=("--no-wait",), go=go[1], model=tex)
    second = _build(db, "Highway", go=go[2], model=tex)  # waits for the first, then adds its rows
    time.sleep(3)  # all three have imported earthvec
    go[0].touch()
    _wait_for_lock(db, first)
    go[1].touch()
    go[2].touch()
    _, err = refused.communicate(timeout=300)
    assert refused.returncode == 1 and f"is being written by pid {first.pid}" in err and "--no-wait" in err
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    assert f"waiting for the writer of {db}" in err2
    t = contract.read_table(db)
    sources = {Path(s[0]).parent.name for s in t.column(contract.SOURCE).to_pylist()}
    assert sources == {"Forest", "River", "Pasture", "SeaLake", "Highway"}
    keys = list(zip(t.column(contract.H3).to_pylist(), t.column(contract.DATETIME).to_pylist(), strict=True))
    assert len(keys) == len(set(keys)) == 40 + 35 + 30 + 40 + 34
    assert contract.read_manifest(db).generation == 2  # one per build (0: the empty start)
    assert read_holder(db) is None


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _readers_during_builds(tmp_path: Path, kinds: list[str], builds: list[tuple[str, ...]]) -> None:
    """Readers loop on ``sql``/``similar`` while builds publish: never failing, never a partial generation."""
    db = tmp_path / "db"
    assert _build(db, "Forest").wait(timeout=300) == 0
    counts = {_count(db)}
    stop = tmp_path / "stop"
    readers = []
    for i, kind in enumerate(kinds):
        out = tmp_path / f"reader{i}.jsonl"
        cmd = [sys.executable, "-c", READER, str(db), str(out), str(stop), kind]
        readers.append(
            (kind, out, subprocess.Popen(cmd, cwd=REPO, env=_env(), stderr=subprocess.PIPE, text=True))
        )
    _until(lambda: all(_lines(out) >= 1 for _, out, _ in readers))
    for more in builds:
        b = _build(db, *more)
        _, err = b.communicate(timeout=300)
        assert b.returncode == 0, err
        counts.add(_count(db))
    after = [_lines(out) for _, out, _ in readers]
    _until(lambda: all(_lines(out) > n + 1 for (_, out, _), n in zip(readers, after, strict=True)))
    stop.touch()
    seen: dict[str, list] = {"sql": [], "similar": []}
    for kind, out, proc in readers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        assert lines and all(x["rc"] == 0 for x in lines), err[-2000:]
        seen[kind] += [x["rows"] for x in lines]
    assert len(counts) == len(builds) + 1
    sql_counts = {r[0]["n"] for r in seen["sql"]}
    assert min(counts) in sql_counts and max(counts) in sql_counts  # they read before and after
    assert sql_counts <= counts and all(r[0]["n"] == r[0]["u"] for r in seen["sql"])  # whole, no duplicate
    assert all(len(r) == 3 for r in seen["similar"])


def _until(cond, timeout: float = 240) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "readers stalled"
        time.sleep(0.1)


def test_readers_see_whole_generations_while_a_build_runs(tmp_path: Path) -> None:
    _readers_during_builds(tmp_path, ["sql", "similar"], [("River",)])


@pytest.mark.slow
def test_four_readers_while_two_builds_run(tmp_path: Path) -> None:
    _readers_during_builds(
        tmp_path, ["sql", "similar", "sql", "similar"], [("River",), ("Highway", "SeaLake")]
    )


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


def test_two_explorers_open_one_database(tmp_path: Path, eurosat_db: Path) -> None:
    """Both race to build the missing index: one stores it under the lock, neither fails."""
    import shutil

    db = tmp_path / "db"
    shutil.copytree(eurosat_db, db)
    cmd = [sys.executable, "-c", OPENER, str(db)]
    pipe = subprocess.PIPE
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=pipe, stderr=pipe, text=True) for _ in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "369", err
    from index.store import index_state

    assert index_state(db) == "fresh"
    assert not [p for p in db.rglob("*.tmp")]
