"""Compressed codes with exact re-ranking (``IVF,RaBitQfs,RFlat``) through the store and
search API: unfiltered, FAISS-filtered and row-span queries equal the numpy oracle.

The EuroSAT stats-model database (369 real chips) is asked for the structure by name; every
list is probed and every candidate re-ranked, so answers must be exact.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import h3
import numpy as np
import pandas as pd
import pytest

from embedder import contract, h3grid
from index import factory as fac
from index.filters import Filter
from index.search import similar
from index.store import open_index
from tests.index.index_helpers import oracle_top_k


@pytest.fixture()
def refined(db: Path):  # noqa: ANN201
    dim = contract.read_meta(db).dim
    vi = open_index(db, factory="IVF8,RaBitQfs,RFlat")
    assert vi.sidecar.factory == "IDMap2,IVF8,RaBitQfs,RFlat" and dim > 0
    faiss.extract_index_ivf(vi.index).nprobe = 8
    faiss.downcast_index(vi.index.index).k_factor = 50  # 500 candidates: all 369 rows
    return vi


def test_unfiltered_and_filtered_queries_equal_the_oracle(
    refined, eurosat_labels: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import index.search as search

    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    ids = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    for qi in (0, 100, 200):
        df = similar(refined, cell=int(ids[qi]), k=10)
        want, want_s = oracle_top_k(vecs, ids, vecs[qi], 10, exclude={int(ids[qi])})
        np.testing.assert_allclose(df["score"].to_numpy(), want_s, atol=1e-5)
        assert [h3.str_to_int(x) for x in df["h3"]] == [int(w) for w in want]
    monkeypatch.setattr(search, "EXACT_FILTER_MAX", 0)  # filters go through FAISS selectors
    parents = h3grid.cell_parents(ids, 1)
    vals, counts = np.unique(parents, return_counts=True)
    region = int(vals[np.argmax(counts)])
    keep = parents == region
    qi = int(np.flatnonzero(keep)[3])
    df = similar(refined, cell=int(ids[qi]), k=8, flt=Filter(region=h3grid.cell_to_str(region)))
    want, want_s = oracle_top_k(vecs[keep], ids[keep], vecs[qi], 8, exclude={int(ids[qi])})
    np.testing.assert_allclose(df["score"].to_numpy(), want_s, atol=1e-5)
    assert set(h3grid.cell_parents(np.array([h3.str_to_int(x) for x in df["h3"]], np.uint64), 1)) == {region}


def test_row_span_search_equals_the_oracle(refined, eurosat_labels: pd.DataFrame) -> None:
    vecs = np.stack(eurosat_labels["vec"].to_numpy())
    ids = eurosat_labels["h3"].to_numpy(dtype=np.uint64)
    q = vecs[::40]
    a, b = 40, 200
    s, rows = refined.search_rows(q, 8, span=(a, b))
    for i in range(len(q)):
        want, want_s = oracle_top_k(vecs[a:b], ids[a:b], q[i], 8)
        np.testing.assert_allclose(s[i], want_s, atol=1e-5)
        assert list(refined.ids[rows[i]]) == [int(w) for w in want]
    assert not fac.supports_remove(refined.index)  # updates rebuild this structure
