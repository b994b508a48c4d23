"""``earthvec label`` end to end on the real EuroSAT labels."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from app.cli.main import main
from embedder import contract


@pytest.fixture()
def cli_db(eurosat_db: Path, tmp_path: Path) -> Path:
    out = tmp_path / "db"
    shutil.copytree(Path(eurosat_db) / contract.EMBEDDINGS_DIR, out / contract.EMBEDDINGS_DIR)
    return out


def test_label_prints_cv_and_writes_map(
    cli_db: Path, tmp_path: Path, eurosat_manifest: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds = tmp_path / "seeds.csv"
    eurosat_manifest.rename(columns={"center_lat": "lat", "center_lon": "lon"})[
        ["lat", "lon", "label"]
    ].to_csv(seeds, index=False)
    out = tmp_path / "map.parquet"
    assert main(["label", str(cli_db), "--seeds", str(seeds), "-k", "5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    m = re.search(
        r"spatial cross-validation accuracy \(k=5\): ([0-9.]+) over (\d+) folds of (\d+) blocks",
        text,
    )
    assert m and float(m.group(1)) > 0.5 and int(m.group(2)) == 5
    assert "seeds: 369 used of 369 read (0 outside" in text
    for name in eurosat_manifest["label"].unique():
        assert re.search(rf"^{name}\s+\d+\s+\d+$", text, re.M)
    assert pq.read_table(out).num_rows == 369
    assert (cli_db / "predictions" / "map.parquet").exists()


def test_label_bad_seeds(cli_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seeds = tmp_path / "outside.csv"
    seeds.write_text("lat,lon,label\n0,0,A\n1,1,B\n")
    out = tmp_path / "map.parquet"
    assert main(["label", str(cli_db), "--seeds", str(seeds), "--out", str(out)]) == 1
    assert "none of the 2 seeds" in capsys.readouterr().err
    assert main(["label", str(cli_db), "--seeds", str(tmp_path / "missing.csv"), "--out", str(out)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["label", str(cli_db), "--seeds", str(seeds), "--out", str(tmp_path / "map.csv")]) == 1
    assert "ending in .parquet" in capsys.readouterr().err
    assert not out.exists()
