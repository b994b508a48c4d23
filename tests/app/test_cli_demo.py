"""``earthvec demo`` finds its sample data through --data / $EARTHVEC_DATA, and says so when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli.main import main
from embedder.datapath import DATA_ENV


def test_demo_names_the_data_folder_it_lacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    assert main(["demo", "--db", str(tmp_path / "db"), "--data", str(empty), "--no-serve"]) == 1
    err = capsys.readouterr().err
    assert f"no EuroSAT sample data under {empty}/eurosat_ms" in err and "Traceback" not in err
    assert not (tmp_path / "db").exists()


def test_demo_takes_the_data_folder_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv(DATA_ENV, str(elsewhere))  # wins over the checkout's data/
    assert main(["demo", "--db", str(tmp_path / "db"), "--no-serve"]) == 1
    err = capsys.readouterr().err
    assert f"under {elsewhere}/eurosat_ms" in err and DATA_ENV in err
