"""Shared fixtures: real data from ``data/`` and databases built from it once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
EUROSAT_GLOB = str(DATA / "eurosat_ms" / "tif" / "**" / "*.tif")
BEN_S2_GLOB = str(DATA / "bigearthnet_s1s2" / "S2" / "**" / "*.tif")
BEN_S1_GLOB = str(DATA / "bigearthnet_s1s2" / "S1" / "**" / "*.tif")
LANDSAT_GLOB = str(DATA / "landsat8" / "l8_B*.tif")

os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def eurosat_manifest() -> pd.DataFrame:
    """The EuroSAT manifest (path, label, epsg, bounds, centre lat/lon ...) with absolute paths."""
    df = pd.read_csv(DATA / "eurosat_ms" / "manifest.csv")
    df["abspath"] = [str(DATA / "eurosat_ms" / p) for p in df["path"]]
    return df


@pytest.fixture(scope="session")
def eurosat_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database of the 369 real EuroSAT chips embedded with the ``stats`` model (read-only!)."""
    from embedder.build import build_db

    db = tmp_path_factory.mktemp("eurosat") / "db"
    build_db(db, [EUROSAT_GLOB], sensor="sentinel2-l1c-eurosat", model="stats")
    return db


@pytest.fixture(scope="session")
def ben_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database of the 4 BigEarthNet places with aligned S2 (optical) and S1 (sar) chips."""
    from embedder.build import SourceSpec, build_db

    db = tmp_path_factory.mktemp("ben") / "db"
    build_db(db, [SourceSpec([BEN_S2_GLOB]), SourceSpec([BEN_S1_GLOB])], model="stats")
    return db


@pytest.fixture(scope="session")
def tex_l8(tmp_path_factory: pytest.TempPathFactory):  # -> bench.import_roundtrip.Native
    """The Landsat-8 scene embedded with earthvec-tex at H3 res 8 (457 cells; read-only!)."""
    from bench.import_roundtrip import read_native
    from embedder.build import build_db

    db = tmp_path_factory.mktemp("tex_l8") / "db"
    build_db(db, [LANDSAT_GLOB], res=8, model="earthvec-tex")
    return read_native(db)


@pytest.fixture(scope="session")
def tex_eurosat(tmp_path_factory: pytest.TempPathFactory):  # -> bench.import_roundtrip.Native
    """The 369 EuroSAT chips embedded with earthvec-tex at H3 res 8 (read-only!)."""
    from bench.import_roundtrip import read_native
    from embedder.build import build_db

    db = tmp_path_factory.mktemp("tex_eurosat") / "db"
    build_db(db, [EUROSAT_GLOB], sensor="sentinel2-l1c-eurosat", res=8, model="earthvec-tex")
    return read_native(db)
