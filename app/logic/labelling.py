"""Labelling state for the explorer: seeds by cell, kNN maps and their summaries."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.limits import max_upload_bytes
from app.logic.predict import Prediction, predict_rows, suggest_next
from app.logic.rows import Rows
from embedder.errors import SeedError
from index.cv import BLOCK_RES_OFFSET, CVResult, learning_curve, spatial_cv
from index.seeds import LABEL, read_seeds, seed_cells


@dataclass
class LabelRun:
    """One kNN labelling of every cell from the session's seeds."""

    prediction: Prediction
    cv: CVResult
    curve: list[tuple[int, float, float]]
    suggestions: np.ndarray


def seeds_from_upload(rows: Rows, name: str, data: bytes) -> tuple[dict[str, str], int]:
    """Seeds from an uploaded CSV/GeoJSON file, mapped onto the database's cells.

    Returns:
        ``{hex cell: label}`` for seeds inside the database, and how many fell outside.

    Raises:
        SeedError: for a file over the upload limit (:func:`app.limits.max_upload_bytes`), an
            unreadable file or bad rows (message from :mod:`index.seeds`).
    """
    cap = max_upload_bytes()
    if len(data) > cap:
        raise SeedError(
            f"{name} is {len(data) / 2**20:.1f} MB; the explorer accepts seed files up to "
            f"{cap // 2**20} MB: upload fewer seeds, or label from the command line with "
            "earthvec label DB --seeds FILE"
        )
    suffix = Path(name).suffix or ".csv"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"seeds{suffix}"
        path.write_bytes(data)
        df = read_seeds(path)
        cells = seed_cells(df, rows.resolution, name)
    known = rows.h3[rows.latest]
    pos = np.searchsorted(known, cells)
    inside = (pos < len(known)) & (known[np.minimum(pos, len(known) - 1)] == cells)
    out: dict[str, str] = {}
    for c, lab, ok in zip(cells, df[LABEL].astype(str), inside, strict=True):
        if ok:
            out.setdefault(format(int(c), "x"), lab)
    if not out:
        raise SeedError(
            f"none of the {len(cells)} seeds in {name} lies in a cell of this database; "
            "give seeds inside the area the database covers"
        )
    return out, int((~inside).sum())


def run_labelling(rows: Rows, labels: dict[str, str], k: int, curve: bool = True) -> LabelRun:
    """kNN-label every cell, cross-validate spatially, draw the learning curve, suggest cells.

    Raises:
        SeedError: with fewer than two classes.
    """
    cells = np.array([int(c, 16) for c in labels], dtype=np.uint64)
    seed_rows = np.array([rows.row_of_cell(int(c)) for c in cells], dtype=np.int64)
    names = list(labels.values())
    pred = predict_rows(rows.vectors, rows.latest, seed_rows, names, k)
    block_res = max(0, rows.resolution - BLOCK_RES_OFFSET)
    vecs = rows.vectors[seed_rows]
    cv = spatial_cv(cells, vecs, np.asarray(names), k=k, block_res=block_res)
    lc = learning_curve(cells, vecs, np.asarray(names), k=k, block_res=block_res) if curve else []
    return LabelRun(pred, cv, lc, suggest_next(pred, seed_rows, 5))


def predicted_for(rows: Rows, pred: Prediction, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class number (-1 when unlabelled) and confidence for rows ``idx``, by cell."""
    cells = rows.h3[pred.rows]
    want = rows.h3[np.asarray(idx, dtype=np.int64)]
    pos = np.searchsorted(cells, want)
    pos_c = np.minimum(pos, max(len(cells) - 1, 0))
    found = (len(cells) > 0) & (cells[pos_c] == want)
    cls = np.where(found, pred.pred[pos_c], -1)
    conf = np.where(found, pred.confidence[pos_c], np.nan)
    return cls, conf


def class_colouring(
    rows: Rows, pred: Prediction, idx: np.ndarray
) -> tuple[np.ndarray, Callable[[], list[str]]]:
    """Class colours of rows ``idx`` (greyer when less confident) and their hover texts.

    The texts come from a function, called only when single cells are drawn.
    """
    from app.logic.colour import class_colours

    pal = class_colours(pred.classes)
    lut = np.array([pal[c] for c in pred.classes] + [(60, 60, 60)], dtype=np.float64)
    cls, conf = predicted_for(rows, pred, idx)
    c = np.nan_to_num(conf, nan=1.0)[:, None]
    colours = (lut[cls] * c + 90.0 * (1.0 - c)).round().astype(np.uint8)

    def info() -> list[str]:
        return [
            f"predicted {pred.classes[k]} ({p:.2f})" if k >= 0 else "not labelled"
            for k, p in zip(cls, conf, strict=True)
        ]

    return colours, info
