"""Fault injection: SIGKILL earthvec writers at random moments, resume, compare with a clean run.

``python -m bench.chaos [--kills 20] [--ops build,global,index,label,overwrite] [--out DIR]``
(``make chaos``) prints one table row per operation (kills injected, resumes, rows lost,
rows duplicated, rows differing, bad states seen after a kill, temporary files left) and
writes ``chaos.json``.

Each operation runs as a real ``earthvec`` process (``python -m app.cli.main ...``, or a
one-line ``python -c`` for the global build, which has no command of its own) in its own
process group. An *episode* starts from the operation's initial database, kills the
process with SIGKILL after a random time (uniform between 0.8 times the moment a clean
run took the database lock, i.e. after the imports, and the clean run's duration), checks
what a reader sees right after the kill (the published state must be the initial one or
the finished one, never a mix, never a duplicate), runs it again, and so on until a run
completes; the result is then compared row for row (sorted
``(h3, datetime, embedding)`` digest) with a clean run. Episodes repeat until the kills
asked for are injected.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.chaos_ops import OPS, Operation, rows_state
from bench.chaos_proc import Watch, run, tmp_files

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    """One line of the chaos table."""

    operation: str
    kills_injected: int = 0
    resumes: int = 0
    episodes: int = 0
    rows_lost: int = 0
    rows_duplicated: int = 0
    rows_differing: int = 0
    bad_states_after_kill: int = 0
    tmp_left: int = 0
    clean_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def chaos(op: Operation, kills: int, rng: random.Random, work: Path) -> Row:
    """Inject ``kills`` SIGKILLs into ``op`` (see the module docstring) and report."""
    row = Row(op.name)
    log = work / f"{op.name}.log"
    base = work / f"{op.name}-base"
    op.prepare(base, log)
    initial = op.state(base)
    clean = work / f"{op.name}-clean"
    _copy(base, clean)
    from embedder.storage import read_holder

    watch = Watch(lambda: read_holder(clean) is not None)
    t0 = time.perf_counter()
    run(op.argv(clean), log=log, watch=watch)
    duration = time.perf_counter() - t0
    row.clean_seconds = round(duration, 2)
    start = 0.8 * (watch.at if watch.at is not None else 0.25 * duration)  # kill while writing
    ref = op.state(clean)
    while row.kills_injected < kills:
        db = work / f"{op.name}-ep{row.episodes}"
        _copy(base, db)
        while True:
            if row.kills_injected < kills:
                completed = run(op.argv(db), kill_after=rng.uniform(start, duration), log=log)
            else:
                completed = run(op.argv(db), log=log)  # the last resume, never killed
            if completed:
                break
            row.kills_injected += 1
            row.resumes += 1
            seen = op.state(db)
            if seen not in (initial, ref) or not op.consistent(db):
                row.bad_states_after_kill += 1
                row.problems.append(f"episode {row.episodes}: after kill {row.kills_injected}: {seen}")
        final = op.state(db)
        lost, dup, diff = op.compare(ref, final, db)
        row.rows_lost += lost
        row.rows_duplicated += dup
        row.rows_differing += diff
        row.tmp_left += tmp_files(db)
        row.episodes += 1
        shutil.rmtree(db)
    return row


def _copy(src: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    if src.exists():
        shutil.copytree(src, dst)


def table(rows: list[Row]) -> str:
    """The chaos table as printed."""
    head = (
        f"{'operation':<10} {'kills':>5} {'resumes':>7} {'episodes':>8} {'lost':>5} {'dup':>5} "
        f"{'differ':>6} {'bad':>4} {'tmp':>4} {'clean_s':>7}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.operation:<10} {r.kills_injected:>5} {r.resumes:>7} {r.episodes:>8} {r.rows_lost:>5} "
            f"{r.rows_duplicated:>5} {r.rows_differing:>6} {r.bad_states_after_kill:>4} {r.tmp_left:>4} "
            f"{r.clean_seconds:>7}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None, print_: Callable[[str], None] = print) -> int:
    """Run the chaos table; exit status 1 when any row lost, doubled or changed a row."""
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs per operation (default 20)")
    p.add_argument("--ops", default=",".join(OPS), help=f"operations (default {','.join(OPS)})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench_results", help="folder for chaos.json")
    p.add_argument("--work", help="work folder (default: a temporary one, removed)")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="earthvec-chaos-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in args.ops.split(","):
            rows.append(chaos(OPS[name], args.kills, rng, work))
            print_(table(rows[-1:]).splitlines()[-1] if len(rows) > 1 else table(rows))
    print_("\n" + table(rows))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"kills": args.kills, "seed": args.seed, "rows": [asdict(r) for r in rows]}
    (out / "chaos.json").write_text(json.dumps(report, indent=1))
    bad = any(r.rows_lost or r.rows_duplicated or r.rows_differing or r.bad_states_after_kill for r in rows)
    return 1 if bad or any(r.tmp_left for r in rows) else 0


__all__ = ["Row", "Watch", "chaos", "main", "rows_state", "run", "table", "tmp_files"]

if __name__ == "__main__":
    sys.exit(main())
