"""Smoke run of the out-of-core database benchmark on the res-2 global database (marked ``bench``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.ondisk_db_bench import main


@pytest.mark.bench
def test_ondisk_db_bench_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ondisk_db.json"
    assert main(["--res", "2", "--queries", "50", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["cells"] > 1000 and res["shards"] >= 1 and res["similar_rows"] == 10
    assert res["search"][-1]["recall_at_10"] >= 0.9  # the widest nprobe is near exact
    assert "recall@10" in capsys.readouterr().out
