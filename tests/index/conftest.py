"""Fixtures for the index tests: the real EuroSAT database (stats model) and private copies.

``source_db`` is the shared session fixture ``eurosat_db`` (369 real EuroSAT chips, stats
model, built by ``embedder.build``); tests that write (indexes, labels, extra shards) use
``db``, a private copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from embedder import contract


@pytest.fixture(scope="session")
def source_db(eurosat_db: Path) -> Path:
    """The shared read-only EuroSAT database."""
    return Path(eurosat_db)


@pytest.fixture()
def db(source_db: Path, tmp_path: Path) -> Path:
    """A private copy of the EuroSAT database (tests may write indexes, labels, shards)."""
    out = tmp_path / "db"
    shutil.copytree(source_db / contract.EMBEDDINGS_DIR, out / contract.EMBEDDINGS_DIR)
    return out


@pytest.fixture(scope="session")
def eurosat_labels(source_db: Path, eurosat_manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per database cell: h3 (uint64), lat, lon, label (from the manifest), vector."""
    t = contract.read_table(source_db)
    by_name = dict(
        zip(
            eurosat_manifest["path"].map(lambda p: Path(p).name),
            eurosat_manifest["label"],
            strict=True,
        )
    )
    df = t.select([contract.H3, contract.LAT, contract.LON]).to_pandas()
    df["label"] = [by_name[Path(s[0]).name] for s in t.column(contract.SOURCE).to_pylist()]
    df["vec"] = list(contract.embeddings_matrix(t))
    return df.sort_values(contract.H3).reset_index(drop=True)
