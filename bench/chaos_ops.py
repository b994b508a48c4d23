"""The operations :mod:`bench.chaos` kills: what each runs, its initial state and what a reader sees.

* ``build``: ``earthvec build`` of EuroSAT (stats model, index included) into a new database;
* ``global``: a res-4 global build of the first ``limit`` land cells (``python -c``);
* ``index``: ``earthvec index DB --rebuild`` on a built database;
* ``label``: ``earthvec label DB --seeds ... --out DB/predictions/chaos.parquet``;
* ``overwrite``: ``earthvec build --overwrite --model earthvec-tex`` over a stats database.

A state is what a reader sees: the published rows (as ``(h3, datetime, hash of the
embedding)`` triples) and, per operation, the index or the label map.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.chaos_proc import run

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
EUROSAT = DATA / "eurosat_ms" / "tif"
SENSOR = "sentinel2-l1c-eurosat"
SMALL_CLASSES = ("Forest", "River", "Highway")
GLOBAL_LIMIT = 3000
MAP = "predictions/chaos.parquet"

Rows = frozenset[tuple[int, int, str]]


def rows_state(db: Path) -> tuple[Rows, int] | None:
    """Published rows as ``(h3, datetime us, embedding hash)`` triples and the row count."""
    from embedder import contract
    from embedder.errors import InputNotFoundError

    try:
        t = contract.read_table(db, columns=[contract.H3, contract.DATETIME, contract.EMBEDDING])
    except (InputNotFoundError, FileNotFoundError):
        return None
    if t.num_rows == 0:
        return None
    h3 = t.column(contract.H3).to_numpy()
    dt = t.column(contract.DATETIME).cast("int64").fill_null(-1).to_numpy()
    emb = contract.embeddings_matrix(t)
    triples = frozenset(
        (int(c), int(d), hashlib.sha1(np.ascontiguousarray(v).tobytes()).hexdigest()[:16])
        for c, d, v in zip(h3, dt, emb, strict=True)
    )
    return triples, t.num_rows


def consistent(db: Path) -> bool:
    """Every file the manifest lists is whole (size, footer, checksum) and index files exist."""
    from embedder import contract
    from embedder.storage import verify

    m = contract.read_manifest(db)
    if m is None:
        return True
    if not all(verify(db, f) for f in m.files()):
        return False
    return all((db / p).exists() for d in m.derived.values() for p in d.files)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli.main", *args]


def _sources(classes: tuple[str, ...] | None) -> list[str]:
    if classes is None:
        return ["--source", str(EUROSAT / "**" / "*.tif")]
    return [a for c in classes for a in ("--source", str(EUROSAT / c / "*.tif"))]


@dataclass
class Operation:
    """One killable operation (see the module docstring)."""

    name: str
    argv: Callable[[Path], list[str]]
    setup: Callable[[Path], list[str]] | None = None
    extra: Callable[[Path], Any] | None = None

    def prepare(self, base: Path, log: Path) -> None:
        """Create the initial database in ``base`` (nothing for a build into a new folder)."""
        if self.setup is not None:
            run(self.setup(base), log=log)

    def state(self, db: Path) -> Any:
        """What a reader sees (comparable with ``==``)."""
        return (rows_state(db), self.extra(db) if self.extra else None)

    def consistent(self, db: Path) -> bool:
        """The published files are whole."""
        return consistent(db)

    def compare(self, ref: Any, final: Any, db: Path) -> tuple[int, int, int]:
        """(rows lost, rows duplicated, rows differing) of ``final`` against ``ref``."""
        (want, _), (got, n) = ref[0], final[0] or (frozenset(), 0)
        keys_want = {(c, d) for c, d, _ in want}
        keys_got = [(c, d) for c, d, _ in got]
        lost = len(keys_want - set(keys_got))
        dup = n - len(set(keys_got))
        differ = len(want - got) - lost + (0 if ref[1] == final[1] else 1)
        return lost, dup, differ


def _index_state(db: Path) -> str:
    from index.store import index_state, open_index

    state = index_state(db)
    if state == "missing":
        return state
    vi = open_index(db, rebuild=False)
    return f"{state}:{len(vi)}:{vi.model}"


def _map_state(db: Path) -> str | None:
    import pyarrow.parquet as pq

    path = db / MAP
    if not path.exists():
        return None
    t = pq.read_table(path, columns=["h3", "label", "confidence"]).sort_by("h3")
    return hashlib.sha1(str(t.to_pydict()).encode()).hexdigest()


def make_ops(classes: tuple[str, ...] | None = None, limit: int = GLOBAL_LIMIT) -> dict[str, Operation]:
    """The operations; ``classes`` picks EuroSAT folders (None: all 369 chips)."""
    src = _sources(classes)
    stats = ("--sensor", SENSOR, "--model", "stats")
    glob_code = (
        "import sys; from embedder.globe.build import build_global_db as b; "
        "b(sys.argv[1], res=4, limit=int(sys.argv[2]), model='stats', progress=False, command='chaos')"
    )
    seeds = str(DATA / "eurosat_ms" / "seeds.csv")
    tex = ("--sensor", SENSOR, "--model", "earthvec-tex", "--overwrite")
    return {
        "build": Operation("build", lambda db: _cli("build", str(db), *src, *stats), extra=_index_state),
        "global": Operation("global", lambda db: [sys.executable, "-c", glob_code, str(db), str(limit)]),
        "index": Operation(
            "index",
            lambda db: _cli("index", str(db), "--rebuild"),
            setup=lambda db: _cli("build", str(db), *src, *stats),
            extra=_index_state,
        ),
        "label": Operation(
            "label",
            lambda db: _cli("label", str(db), "--seeds", seeds, "--out", str(db / MAP)),
            setup=lambda db: _cli("build", str(db), *src, *stats),
            extra=_map_state,
        ),
        "overwrite": Operation(
            "overwrite",
            lambda db: _cli("build", str(db), *src, *tex),
            setup=lambda db: _cli("build", str(db), *src, *stats),
            extra=_index_state,
        ),
    }


OPS = make_ops()
