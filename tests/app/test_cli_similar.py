"""``earthvec similar`` end to end through the real CLI entry point."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from app.cli.main import main
from embedder import contract


@pytest.fixture()
def cli_db(eurosat_db: Path, tmp_path: Path) -> Path:
    out = tmp_path / "db"
    shutil.copytree(Path(eurosat_db) / contract.EMBEDDINGS_DIR, out / contract.EMBEDDINGS_DIR)
    return out


def _cells(db: Path) -> tuple[np.ndarray, np.ndarray]:
    t = contract.read_table(db).sort_by(contract.H3)
    return t.column(contract.H3).to_numpy(), contract.embeddings_matrix(t)


def test_similar_cell_json_matches_numpy(cli_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cells, vecs = _cells(cli_db)
    q = h3.int_to_str(int(cells[10]))
    assert main(["similar", str(cli_db), "--cell", q, "-k", "5", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    s = vecs @ vecs[10]
    s[10] = -np.inf
    want = np.sort(s)[::-1][:5]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([r["score"] for r in rows], want, atol=1e-5)
    assert q not in {r["h3"] for r in rows}
    assert (cli_db / "index" / "index.json").exists()


def test_similar_point_table_and_csv(cli_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cells, _ = _cells(cli_db)
    lat, lon = h3.cell_to_latlng(h3.int_to_str(int(cells[3])))
    assert main(["similar", str(cli_db), "--lat", str(lat), "--lon", str(lon), "-k", "3"]) == 0
    table = capsys.readouterr().out
    assert "score" in table and "rank" in table and len(table.strip().splitlines()) == 4
    assert (
        main(
            [
                "similar",
                str(cli_db),
                "--lat",
                str(lat),
                "--lon",
                str(lon),
                "-k",
                "3",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(df) == 3 and list(df.columns[:5]) == ["h3", "lat", "lon", "score", "rank"]
    assert df["h3"].tolist() == [x.split()[0] for x in table.strip().splitlines()[1:]]


def test_similar_with_examples_and_region(cli_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cells, _ = _cells(cli_db)
    region = h3.cell_to_parent(h3.int_to_str(int(cells[0])), 1)
    args = [
        "similar",
        str(cli_db),
        "--positive",
        h3.int_to_str(int(cells[0])),
        "--negative",
        h3.int_to_str(int(cells[1])),
        "--region",
        region,
        "-k",
        "50",
        "--format",
        "json",
    ]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(h3.cell_to_parent(r["h3"], 1) == region for r in rows)


def test_negative_bbox_needs_no_equals_sign(cli_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--bbox -10,40,30,60`` (west and south are negative) parses like ``--bbox=...``."""
    cells, _ = _cells(cli_db)
    q = h3.int_to_str(int(cells[0]))
    args = ["similar", str(cli_db), "--cell", q, "-k", "400", "--format", "json"]
    assert main([*args, "--bbox", "-10,40,30,60"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(-10 <= r["lon"] <= 30 and 40 <= r["lat"] <= 60 for r in rows)
    assert main([*args, "--bbox=-10,40,30,60"]) == 0
    assert json.loads(capsys.readouterr().out) == rows


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lat", "91", "--lon", "0"], "latitude 91.0 is out of range"),
        (["--cell", "xyz"], "'xyz' is not an H3 cell"),
        (["--lat", "0", "--lon", "0"], "not in the database"),
        ([], "give one query"),
        (["--cell", "8808b1573bfffff", "-k", "0"], "at least one result"),
        (["--cell", "8808b1573bfffff", "--bbox", "1,2,3"], "four numbers"),
    ],
)
def test_similar_bad_input(
    cli_db: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["similar", str(cli_db), *args]) == 1
    err = capsys.readouterr().err
    assert "earthvec similar: error:" in err and message in err


def test_similar_refuses_index_of_other_model(cli_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cells, _ = _cells(cli_db)
    q = h3.int_to_str(int(cells[0]))
    assert main(["similar", str(cli_db), "--cell", q]) == 0
    side = cli_db / "index" / "index.json"
    d = json.loads(side.read_text())
    d["model"] = "stats@000000000000"
    side.write_text(json.dumps(d))
    capsys.readouterr()
    assert main(["similar", str(cli_db), "--cell", q]) == 1
    err = capsys.readouterr().err
    assert "stats@000000000000" in err and "--rebuild-index" in err
    assert main(["similar", str(cli_db), "--cell", q, "--rebuild-index"]) == 0


def test_similar_coarse_to_fine_equals_oracle_inside_parents(
    cli_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from embedder import h3grid
    from index.pyramid import read_level

    cells, vecs = _cells(cli_db)
    q = h3.int_to_str(int(cells[7]))
    args = ["similar", str(cli_db), "--cell", q, "--coarse", "3", "--parents", "2", "-k", "5"]
    assert main([*args, "--format", "json"]) == 0
    out = capsys.readouterr()
    assert "building pyramid level 3" in out.err
    rows = json.loads(out.out)
    level = read_level(cli_db, 3)  # built by the command
    pv, pid = contract.embeddings_matrix(level), level.column(contract.H3).to_numpy()
    best = pid[np.argsort(-(pv @ vecs[7]))[:2]]
    keep = np.isin(h3grid.cell_parents(cells, 3), best)
    keep[7] = False  # the query cell is excluded
    s = vecs[keep] @ vecs[7]
    order = np.argsort(-s)[:5]
    assert [r["h3"] for r in rows] == [h3.int_to_str(int(c)) for c in cells[keep][order]]
    np.testing.assert_allclose([r["score"] for r in rows], s[order], atol=1e-5)
    # with a region filter every hit lies inside the region; the level is reused
    region = h3.cell_to_parent(q, 2)
    assert main([*args, "--region", region, "--format", "json"]) == 0
    out = capsys.readouterr()
    assert "building" not in out.err
    inside = keep & (h3grid.cell_parents(cells, 2) == h3grid.parse_cell(region))
    s2 = vecs[inside] @ vecs[7]
    want = [h3.int_to_str(int(c)) for c in cells[inside][np.argsort(-s2)[:5]]]
    assert [r["h3"] for r in json.loads(out.out)] == want
    # examples go through the same path
    neg = h3.int_to_str(int(cells[8]))
    assert main([*args[:2], "--positive", q, "--negative", neg, *args[4:], "--format", "json"]) == 0
    got = [r["h3"] for r in json.loads(capsys.readouterr().out)]
    assert 1 <= len(got) <= 5 and q not in got and neg not in got
    assert main([*args[:4], "--coarse", "8"]) == 1
    assert "coarser than the database" in capsys.readouterr().err
