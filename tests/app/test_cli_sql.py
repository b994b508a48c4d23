"""``earthvec sql`` end to end."""

from __future__ import annotations

import io
import json
from pathlib import Path

import h3
import pandas as pd
import pytest

from app.cli.main import main


def test_sql_csv_json_table(eurosat_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q = "SELECT h3_parent, count(*) n FROM embeddings GROUP BY 1 ORDER BY n DESC, 1"
    assert main(["sql", str(eurosat_db), q, "--format", "csv"]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert df["n"].sum() == 369
    assert main(["sql", str(eurosat_db), q, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["n"] for r in rows] == df["n"].tolist()
    assert (
        main(
            [
                "sql",
                str(eurosat_db),
                "SELECT h3_to_string(h3) s, embedding FROM embeddings",
                "--limit",
                "2",
            ]
        )
        == 0
    )
    cap = capsys.readouterr()
    assert len(cap.out.strip().splitlines()) == 3 and "cut at 2 rows" in cap.err


def test_sql_errors(eurosat_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", str(eurosat_db), "SELECT nope FROM embeddings"]) == 1
    assert "SQL failed" in capsys.readouterr().err
    f = tmp_path / "x.csv"
    f.write_text("a\n1\n")
    assert main(["sql", str(eurosat_db), f"SELECT * FROM read_csv('{f}')", "--read-only"]) == 1
    assert "disabled" in capsys.readouterr().err
    assert main(["sql", str(tmp_path / "nodb"), "SELECT 1"]) == 1
    assert "build the database first" in capsys.readouterr().err


def test_sql_repeated_column_names_print(eurosat_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    q = "SELECT h3_to_string(h3) AS c, h3_to_string(h3_parent(h3, 3)) AS c FROM embeddings ORDER BY 1 LIMIT 3"
    assert main(["sql", str(eurosat_db), q, "--format", "csv"]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(df.columns) == ["c", "c_1"] and len(df) == 3
    assert df["c_1"].tolist() == [h3.cell_to_parent(c, 3) for c in df["c"]]
