"""The import round-trip table (bench.import_roundtrip): every layout gives the native answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.import_roundtrip import markdown, run


@pytest.mark.slow
def test_every_layout_loses_nothing_beyond_its_quantisation(tmp_path: Path) -> None:
    rows = run(tmp_path)
    assert len(rows) == 8
    for r in rows:
        assert r["rows_matched"] == r["rows_imported"] > 100, r
        assert r["min_cosine"] > 0.9998, r
        assert r["recall_at_10"] >= r["recall_at_10_quantisation_only"] - 0.01, r
        assert r["map_agreement"] > 0.98, r
        if r["layout"].startswith(("Major TOM", "Clay", "Earth Index")):
            assert r["recall_at_10"] == 1.0 and r["cv_imported"] == r["cv_reference"], r
    assert "| layout |" in markdown(rows)
