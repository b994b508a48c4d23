"""Which embedding should I use? The same spatially blocked kNN probe over two databases of one place.

``compare(db_a, db_b, seeds)`` maps the seed points onto each database, keeps the seeds that
land in a cell of both (and are the only seed of that cell in both), splits them into the
same spatial folds for both (whole H3 blocks, :mod:`index.cv`) and runs the project's one
kNN vote (:mod:`index.vote`) on each database's vectors. Only the vectors differ, so the
accuracies compare the embeddings (two models, or two products) and nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedder import contract
from embedder.errors import SeedError
from index.cv import BLOCK_RES_OFFSET, DEFAULT_FOLDS, DEFAULT_K, CVResult, spatial_cv
from index.label import MapSource
from index.seeds import LABEL, read_seeds, seed_cells
from index.vectors import lookup_latest


@dataclass
class Probe:
    """One database's result in a comparison."""

    db: str
    model: str
    dim: int
    resolution: int
    accuracy: float | None
    balanced_accuracy: float | None
    fold_accuracy: list[float]
    fold_std: float | None
    n_folds: int
    n_blocks: int
    message: str


@dataclass
class Comparison:
    """The probe of two databases on the same seeds and folds."""

    seeds_file: str
    seeds_read: int
    seeds_used: int
    seeds_outside_a: int
    seeds_outside_b: int
    seeds_duplicate: int
    k: int
    block_resolution: int
    class_counts: dict[str, int]
    a: Probe
    b: Probe

    def to_dict(self) -> dict[str, Any]:
        """JSON-able result."""
        return asdict(self)


def _seed_vectors(src: MapSource, df: Any, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per seed row: its cell, whether the database holds it, and its (most recent) vector."""
    cells = seed_cells(df, src.resolution, where)
    ids, vecs = lookup_latest(src.db, cells, src.partition_resolution)
    pos = np.minimum(np.searchsorted(ids, cells), max(len(ids) - 1, 0))
    inside = (ids[pos] == cells) if len(ids) else np.zeros(len(cells), dtype=bool)
    out = np.zeros((len(cells), vecs.shape[1] if vecs.size else 1), dtype=np.float32)
    if inside.any():
        out[inside] = vecs[pos[inside]]
    return cells, inside, out


def _first_per_cell(cells: np.ndarray) -> np.ndarray:
    keep = np.zeros(len(cells), dtype=bool)
    _, first = np.unique(cells, return_index=True)
    keep[first] = True
    return keep


def _probe(src: MapSource, cv: CVResult) -> Probe:
    std = float(np.std(cv.fold_accuracy)) if cv.fold_accuracy else None
    dim = contract.read_meta(src.db).dim
    return Probe(str(src.db), src.model, dim, src.resolution, cv.accuracy, cv.balanced_accuracy,
                 cv.fold_accuracy, std, cv.n_folds, cv.n_blocks, cv.message)  # fmt: skip


def compare(
    db_a: str | Path,
    db_b: str | Path,
    seeds: str | Path,
    *,
    k: int = DEFAULT_K,
    n_folds: int = DEFAULT_FOLDS,
    block_res: int | None = None,
) -> Comparison:
    """Spatially blocked kNN accuracy of two databases on the same seeds and folds.

    Args:
        db_a: first database folder.
        db_b: second database folder (same place; any model, dimension or resolution).
        seeds: CSV (``lat,lon,label`` or ``h3,label``) or GeoJSON points with ``label``.
        k: neighbours per vote.
        n_folds: spatial folds.
        block_res: H3 resolution of the spatial blocks (default: the coarser database's
            resolution minus 4).

    Raises:
        SeedError: fewer than two classes among the seeds both databases hold, or a bad
            block resolution.
    """
    if k < 1:
        raise SeedError(f"k={k}: use at least one neighbour")
    if n_folds < 2:
        raise SeedError(f"--folds {n_folds}: cross-validation needs at least 2 folds")
    df = read_seeds(seeds)
    sa, sb = MapSource.of(db_a), MapSource.of(db_b)
    ca, in_a, va = _seed_vectors(sa, df, str(seeds))
    cb, in_b, vb = _seed_vectors(sb, df, str(seeds))
    both = in_a & in_b
    unique = _first_per_cell(np.where(both, ca, np.uint64(0))) & _first_per_cell(
        np.where(both, cb, np.uint64(0))
    )
    use = both & unique
    labels = df[LABEL].to_numpy(dtype=str)[use]
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise SeedError(
            f"only {int(use.sum())} seed(s) of {seeds} fall in cells of both databases "
            f"({len(classes)} class); a comparison needs seeds of at least two classes inside both"
        )
    coarse = min(sa.resolution, sb.resolution)
    bres = max(0, coarse - BLOCK_RES_OFFSET) if block_res is None else int(block_res)
    if not 0 <= bres <= coarse:
        raise SeedError(
            f"block resolution {bres} must lie in [0, {coarse}] (the coarser database's resolution)"
        )
    blocks = (ca if sa.resolution <= sb.resolution else cb)[use]  # one set of blocks, so the same folds
    cv_a = spatial_cv(blocks, va[use], labels, k=k, block_res=bres, n_folds=n_folds)
    cv_b = spatial_cv(blocks, vb[use], labels, k=k, block_res=bres, n_folds=n_folds)
    return Comparison(
        seeds_file=str(seeds), seeds_read=len(df), seeds_used=int(use.sum()),
        seeds_outside_a=int((~in_a).sum()), seeds_outside_b=int((~in_b).sum()),
        seeds_duplicate=int((both & ~unique).sum()), k=k, block_resolution=bres,
        class_counts={str(c): int(n) for c, n in zip(classes, counts, strict=True)},
        a=_probe(sa, cv_a), b=_probe(sb, cv_b),
    )  # fmt: skip
