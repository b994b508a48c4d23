"""``earthvec import``, ``export`` and ``compare`` end to end, as the README shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli.main import main
from bench import product_layouts as pl
from tests.conftest import DATA

SEEDS = str(DATA / "eurosat_ms" / "seeds.csv")


def test_import_similar_label_export_compare(
    tex_eurosat, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = pl.unit(tex_eurosat.vectors @ pl.projection(tex_eurosat.vectors.shape[1], 384))
    fp, lat, lon = pl.chip_footprints(tex_eurosat.files)
    pl.write_earthindex(tmp_path / "ei", pl.Chips(fp, lat, lon, tex_eurosat.files, ref), "tex384", "1")
    db = str(tmp_path / "ei_db")
    assert main(["import", db, "--from", "earthindex", str(tmp_path / "ei"), "--spread"]) == 0
    out = capsys.readouterr().out
    assert "imported earthindex@tex384-1 from 1 file(s) (369 chips" in out and "wrote 369 of 369 rows" in out

    assert (
        main(["similar", db, "--lat", "50.308909", "--lon", "3.004267", "-k", "3", "--format", "json"]) == 0
    )
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["label", db, "--seeds", SEEDS, "--out", str(tmp_path / "map.parquet")]) == 0
    assert "spatial cross-validation accuracy" in capsys.readouterr().out
    assert main(["sql", db, "SELECT count(*) AS n, max(count) AS c FROM embeddings"]) == 0
    assert "369" in capsys.readouterr().out

    assert main(["export", db, "--stac", str(tmp_path / "stac")]) == 0
    out = capsys.readouterr().out
    assert (
        "wrote 369 rows" in out and "validated" in out and (tmp_path / "stac" / "collection.json").is_file()
    )

    assert main(["compare", str(tex_eurosat.db), db, "--seeds", SEEDS]) == 0
    out = capsys.readouterr().out
    assert "balanced accuracy" in out and "per-fold spread" in out and "369 used of 369" in out
    assert main(["compare", str(tex_eurosat.db), db, "--seeds", SEEDS, "--format", "json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["a"]["accuracy"] == res["b"]["accuracy"] and res["b"]["dim"] == 384

    assert main(["import", db, "--from", "clay", str(tmp_path / "ei")]) == 1
    assert "pass --version" in capsys.readouterr().err
    assert main(["import", db, "--from", "clay", str(tmp_path / "ei"), "--version", "v001"]) == 1
    assert "lacks column" in capsys.readouterr().err  # an Earth Index file is not a Clay file
    assert main(["import", str(tmp_path / "x"), "--from", "majortom", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
