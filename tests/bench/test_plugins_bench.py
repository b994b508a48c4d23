"""The plugin throughput benchmark runs end to end on real chips (tiny sizes) and writes its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.plugins import eurosat_batch, main


def test_plugins_bench_writes_one_row_per_batch_size(tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setattr(
        torch.hub, "download_url_to_file", lambda *a, **k: (_ for _ in ()).throw(AssertionError)
    )
    threads = torch.get_num_threads()
    try:
        rc = main(
            [
                "--models",
                "ssl4eo-resnet18",
                "--chips",
                "3",
                "--batch-sizes",
                "1,2",
                "--threads",
                "1",
                "--out",
                str(tmp_path / "p.json"),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    rows = json.loads((tmp_path / "p.json").read_text())["rows"]
    assert [(r["model"], r["batch_size"], r["chips"], r["input_px"]) for r in rows] == [
        ("ssl4eo-resnet18", 1, 3, 224),
        ("ssl4eo-resnet18", 2, 3, 224),
    ]
    assert all(r["chips_per_s"] > 0 for r in rows)
    assert "chips/s" in capsys.readouterr().out


def test_bench_chips_are_real_eurosat_pixels() -> None:
    b = eurosat_batch(2).modalities["optical"]
    assert b.data.shape == (2, 13, 64, 64)
    assert 0.0 < float(b.data.mean()) < 1.0  # top-of-atmosphere reflectance, not random numbers
