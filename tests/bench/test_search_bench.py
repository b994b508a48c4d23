"""Smoke run of the whole search benchmark on a small set (marked ``bench``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.search_bench import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.bench
def test_search_bench_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "search.json"
    rc = main(
        [
            "--n", "20000", "--queries", "50", "--big-n", "30000", "--label-n", "25000",
            "--graph-m", "8", "--ef-construction", "40",
            "--data", str(REPO / "data" / "eurosat_ms"),
            "--out", str(out), "--cache", str(tmp_path / "cache"),
        ]
    )  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    rows = {r["engine"]: r for r in res["rows"]}
    for exact in ("FAISS Flat exact", "DuckDB SQL exact"):
        assert rows[exact]["recall"] == 1.0
    assert rows["numpy exact"]["recall"] >= 0.99
    for approx in ("FAISS IVF", "FAISS HNSW", "hnswlib", "usearch", "FAISS IVF-PQ"):
        r = rows[approx]
        assert r["reached_target"] and r["recall"] >= 0.95 and r["qps_single"] > 0
        assert r["sweep"][-1]["recall"] == r["recall"]
    assert res["plan"]["factory"] == "Flat"  # 20k < 100k vectors: exact
    assert res["compressed"]["recall"] >= 0.95
    assert "PQ" in res["compressed"]["factory"]
    table = capsys.readouterr().out
    assert "recall@10" in table and "targets:" in table
