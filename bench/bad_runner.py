"""Runs bad-input cases through the real ``earthvec`` CLI and judges them (see :mod:`bench.bad_input`).

:class:`Ctx` holds the shared real inputs, :class:`Case` one bad input, :func:`run_case` runs it
as ``python -m app.cli.main CMD ...`` in a subprocess and returns a :class:`Result`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
CHIPS = DATA / "eurosat_ms" / "tif"
CLASSES = ("Forest", "SeaLake", "AnnualCrop")
CHIPS_PER_CLASS = 6


@dataclass
class Ctx:
    """Shared real inputs: a small EuroSAT database (with index) and its seeds."""

    root: Path
    base: Path = field(init=False)
    chips: list[Path] = field(init=False)
    seeds_csv: Path = field(init=False)
    _global: Path | None = None

    def __post_init__(self) -> None:
        from embedder.build import build_db
        from index.store import open_index

        self.chips = [p for c in CLASSES for p in sorted((CHIPS / c).glob("*.tif"))[:CHIPS_PER_CLASS]]
        src = self.root / "src"
        src.mkdir(parents=True, exist_ok=True)
        for p in self.chips:
            shutil.copy(p, src / p.name)
        self.base = self.root / "base_db"
        build_db(self.base, [str(src / "*.tif")], sensor="sentinel2-l1c-eurosat", model="stats")
        open_index(self.base)  # read commands then find an index and write nothing
        import pandas as pd

        seeds = pd.read_csv(DATA / "eurosat_ms" / "seeds.csv")
        names = {p.stem for p in self.chips}
        manifest = pd.read_csv(DATA / "eurosat_ms" / "manifest.csv")
        keep = manifest["path"].map(lambda s: Path(s).stem).isin(names).to_numpy()
        self.seeds_csv = self.root / "seeds.csv"
        seeds[keep].to_csv(self.seeds_csv, index=False)

    def db_copy(self, where: Path) -> Path:
        """A private copy of the base database."""
        return Path(shutil.copytree(self.base, where / "db"))

    def global_db(self) -> Path:
        """A whole-Earth database at H3 resolution 1 (567 land cells), built on first use."""
        if self._global is None:
            from embedder.globe.build import build_global_db

            self._global = self.root / "global_db"
            build_global_db(self._global, res=1, model="stats", progress=False, root=DATA / "global")
        return self._global


Setup = Callable[[Ctx, Path], tuple[list[str], Path]]
Check = Callable[[Path, str], str | None]


@dataclass(frozen=True)
class Case:
    """One bad input: the command, how to make the input, and what must happen.

    ``setup(ctx, tmp)`` makes the files and returns the arguments after the command and the
    database folder that must stay unchanged (or uncreated). ``words`` must appear in the
    error; with ``check`` the case must instead succeed and ``check(db, stdout)`` return
    None (or a reason it failed).
    """

    name: str
    cmd: str
    setup: Setup
    words: str = ""
    check: Check | None = None
    slow: bool = False
    needs_non_root: bool = False
    xfail: str = ""
    """Why the case fails today (work another branch owns); the tests expect it to fail."""
    published_only: bool = False
    """Judge "unchanged" by what readers see (the manifest and the files it lists) instead of
    every byte of the folder: for a build that fails after finishing shards, which it keeps
    unpublished so that the next run resumes them."""


@dataclass
class Result:
    """What one case did."""

    case: str
    cmd: str
    rc: int
    message: str
    one_line: bool
    traceback: bool
    unchanged: bool
    passed: bool
    why: str
    seconds: float


def digest(folder: Path) -> str | None:
    """Hash of a folder's paths and bytes (None: it does not exist)."""
    if not folder.exists():
        return None
    h = hashlib.sha256()
    if folder.is_file():
        h.update(folder.read_bytes())
        return h.hexdigest()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode() + b"\0")
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
    return h.hexdigest()


def published_digest(db: Path) -> str | None:
    """Hash of what readers of ``db`` see: its manifest (or None) and the bytes of the files it lists."""
    from embedder import contract

    m = contract.read_manifest(db) if db.is_dir() else None
    if m is None or not m.partitions:
        return None  # no database (or an empty generation 0): nothing published
    h = hashlib.sha256(m.to_json())
    for f in m.files():
        h.update((db / f.path).read_bytes())
    return h.hexdigest()


def run_case(case: Case, ctx: Ctx, timeout_s: float = 300.0) -> Result:
    """Make the case's input, run the CLI in a subprocess and judge the outcome."""
    tmp = ctx.root / "cases" / case.name
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        argv, db = case.setup(ctx, tmp)
    except Exception as exc:  # noqa: BLE001 - a broken setup is a failed row, not a crash
        return Result(
            case.name, case.cmd, -1, f"setup failed: {exc!r}", False, False, True, False, "setup failed", 0.0
        )
    state = published_digest if case.published_only else digest
    before = state(db)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "TQDM_DISABLE": "1",
        "PYTHONWARNINGS": "default",
    }
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli.main", case.cmd, *argv],
        capture_output=True,
        text=True,
        cwd=tmp,
        env=env,
        timeout=timeout_s,
    )
    secs = time.monotonic() - t0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    prefix = f"earthvec {case.cmd}: error: "
    tb = "Traceback" in proc.stderr
    if case.check is not None:
        why = case.check(db, proc.stdout) if proc.returncode == 0 else f"exit {proc.returncode}"
        out = proc.stdout.strip().splitlines()
        msg = lines[-1] if lines and proc.returncode else (out[-1] if out else "")
        if proc.returncode == 0 and out and out[0].startswith("["):  # JSON results: say how many
            msg = f"{len(json.loads(proc.stdout))} results"
        passed = proc.returncode == 0 and why is None and not tb
        return Result(case.name, case.cmd, proc.returncode, msg, True, tb, True, passed, why or "", secs)
    one = len(lines) == 1 and lines[0].startswith(prefix)
    unchanged = state(db) == before
    msg = lines[-1] if lines else proc.stdout.strip()[-200:]
    reasons = []
    if proc.returncode == 0:
        reasons.append("exit 0")
    if not one:
        reasons.append(f"stderr has {len(lines)} lines" if len(lines) != 1 else "not an earthvec error line")
    if tb:
        reasons.append("traceback")
    if not unchanged:
        reasons.append("database changed")
    if case.words and case.words.lower() not in msg.lower():
        reasons.append(f"message lacks {case.words!r}")
    return Result(
        case.name, case.cmd, proc.returncode, msg, one, tb, unchanged, not reasons, "; ".join(reasons), secs
    )


def run_cases(cases: Iterable[Case], ctx: Ctx, jobs: int = 2) -> list[Result]:
    """Run cases, ``jobs`` at a time (each is its own process)."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda c: run_case(c, ctx), cases))


XFAIL: dict[str, str] = {}
"""Cases marked ``xfail`` (name -> reason), filled by :mod:`bench.bad_cases`."""


def format_table(results: list[Result]) -> str:
    """The bad-input table (one row per case)."""
    rows = [f"{'case':40s} {'cmd':7s} {'rc':>3s} {'1-line':6s} {'db':9s} {'pass':5s} {'s':>5s}  message"]
    for r in results:
        db = "unchanged" if r.unchanged else "CHANGED"
        msg = r.message if len(r.message) <= 150 else r.message[:147] + "..."
        verdict = ("XPASS" if r.passed else "xfail") if r.case in XFAIL else ("ok" if r.passed else "FAIL")
        why = f"  [{r.why}]" if r.why else ""
        rows.append(
            f"{r.case:40s} {r.cmd:7s} {r.rc:3d} {'yes' if r.one_line else 'NO':6s} {db:9s} "
            f"{verdict:5s} {r.seconds:5.1f}  {msg}{why}"
        )
    mine = [r for r in results if r.case not in XFAIL]
    rows.append(
        f"{sum(r.passed for r in mine)}/{len(mine)} cases pass; {sum(r.rc != 0 for r in mine)} refused with "
        f"an error; {len(results) - len(mine)} known failure(s) (xfail) wait for other work"
    )
    return "\n".join(rows)
