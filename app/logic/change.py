"""Change analysis: cells with rows at several dates and how far their vectors moved."""

from __future__ import annotations

import numpy as np

from app.logic.rows import NO_TIME, Rows


def change_table(rows: Rows) -> dict[str, np.ndarray]:
    """Cells with rows at two or more dates and how much their vectors moved.

    Returns:
        Columns ``h3``, ``first_row``, ``last_row``, ``n_dates``, ``similarity``
        (first vs last date) and ``min_step_similarity`` (lowest similarity between
        consecutive dates), one entry per multi-date cell, least similar first.
    """
    dated = rows.time_us != NO_TIME
    idx = np.flatnonzero(dated)
    out: dict[str, list[float | int]] = {
        "h3": [], "first_row": [], "last_row": [], "n_dates": [], "similarity": [],
        "min_step_similarity": [],
    }
    if len(idx):
        order = idx[np.lexsort((rows.time_us[idx], rows.h3[idx]))]
        hs = rows.h3[order]
        starts = np.flatnonzero(np.r_[True, hs[1:] != hs[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for s, e in zip(starts, ends, strict=True):
            if e - s < 2:
                continue
            grp = order[s:e]
            v = rows.vectors[grp]
            steps = np.sum(v[1:] * v[:-1], axis=1)
            out["h3"].append(int(hs[s]))
            out["first_row"].append(int(grp[0]))
            out["last_row"].append(int(grp[-1]))
            out["n_dates"].append(int(e - s))
            out["similarity"].append(float(v[0] @ v[-1]))
            out["min_step_similarity"].append(float(steps.min()))
    sim = np.asarray(out["similarity"], dtype=np.float64)
    order2 = np.argsort(sim, kind="stable")
    return {
        "h3": np.asarray(out["h3"], dtype=np.uint64)[order2],
        "first_row": np.asarray(out["first_row"], dtype=np.int64)[order2],
        "last_row": np.asarray(out["last_row"], dtype=np.int64)[order2],
        "n_dates": np.asarray(out["n_dates"], dtype=np.int64)[order2],
        "similarity": sim[order2].astype(np.float32),
        "min_step_similarity": np.asarray(out["min_step_similarity"], dtype=np.float32)[order2],
    }
