"""Real shard tables for the storage tests: the EuroSAT database's rows, one table per partition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from embedder import contract


@pytest.fixture(scope="session")
def parts(eurosat_db: Path) -> dict[str, pa.Table]:
    """Partition hex id -> its rows (real stats-model vectors of the 369 EuroSAT chips)."""
    table = contract.read_table(eurosat_db)
    meta = contract.read_meta(eurosat_db)
    out = {}
    names = table.column(contract.PARTITION).to_pylist()
    for p in sorted(set(names)):
        t = table.filter(pa.array(np.array(names) == p)).drop_columns([contract.PARTITION])
        out[p] = t.cast(contract.arrow_schema(meta.dim, meta))
    return out


@pytest.fixture(scope="session")
def meta(eurosat_db: Path) -> contract.DatasetMeta:
    """The EuroSAT database's metadata."""
    return contract.read_meta(eurosat_db)
