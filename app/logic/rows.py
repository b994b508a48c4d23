"""Every row of a database in memory, for the explorer (no Streamlit, no torch).

The explorer keeps every row of a database in memory as numpy arrays (attributes plus
vectors): a 2M-row, 64-d database is ~0.5 GB of float32 vectors. :func:`load_rows` reads
them once; :func:`filter_mask` applies a search :class:`~index.filters.Filter` (region,
box, time) to them with the same rules as search. Similarity is the inner product of unit
vectors (cosine similarity).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from embedder import contract
from embedder.errors import QueryError
from index.filters import Filter
from index.vectors import OLDEST, latest_positions

NO_TIME = OLDEST
"""Stored in :attr:`Rows.time_us` for rows without a datetime."""


@dataclass
class Rows:
    """Every row of a database, column by column.

    Attributes:
        h3: cell ids (uint64), one per row; a cell repeats once per date.
        lat, lon: cell centres in degrees.
        time_us: datetime as int64 microseconds since the epoch, :data:`NO_TIME` if unknown.
        valid_fraction: share of valid pixels behind each vector.
        sensors, modalities, source: provenance lists per row (Arrow arrays, read lazily
            with :meth:`provenance`, so millions of rows cost no Python objects).
        vectors: (N, D) float32 unit vectors.
        latest: row numbers of the most recent row of each cell (sorted by cell id); the
            rows a similarity search ranks.
        model: ``name@version`` of the vectors.
        resolution: H3 resolution of the cells.
    """

    h3: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    time_us: np.ndarray
    valid_fraction: np.ndarray
    sensors: pa.ChunkedArray
    modalities: pa.ChunkedArray
    source: pa.ChunkedArray
    vectors: np.ndarray
    latest: np.ndarray
    model: str
    resolution: int

    def __len__(self) -> int:
        return len(self.h3)

    @property
    def dim(self) -> int:
        """Length of the vectors."""
        return int(self.vectors.shape[1])

    @property
    def latest_cells(self) -> np.ndarray:
        """Cell ids of :attr:`latest` (sorted; computed once)."""
        cached = self.__dict__.get("_latest_cells")
        if cached is None:
            cached = self.h3[self.latest]
            self.__dict__["_latest_cells"] = cached
        return cached

    def provenance(self, column: str, idx: np.ndarray | list[int]) -> list[list[str]]:
        """The ``sensors``, ``modalities`` or ``source`` lists of rows ``idx``."""
        arr: pa.ChunkedArray = getattr(self, column)
        return arr.take(pa.array(np.asarray(idx, dtype=np.int64))).to_pylist()

    def row_of_cell(self, cell: int) -> int:
        """Row number of the most recent row of ``cell``.

        Raises:
            QueryError: when the database has no row for ``cell``.
        """
        cells = self.latest_cells
        j = int(np.searchsorted(cells, np.uint64(cell)))
        if j >= len(cells) or int(cells[j]) != int(cell):
            raise QueryError(
                f"cell {int(cell):x} is not in this database; pick a cell shown on the map "
                "or a point inside the covered area"
            )
        return int(self.latest[j])

    def rows_of_cell(self, cell: int) -> np.ndarray:
        """All row numbers of ``cell``, oldest first."""
        rows = np.flatnonzero(self.h3 == np.uint64(cell))
        return rows[np.argsort(self.time_us[rows], kind="stable")]

    def datetime_text(self, row: int) -> str:
        """The row's datetime as ISO text, or an empty string."""
        t = int(self.time_us[row])
        if t == NO_TIME:
            return ""
        return datetime.fromtimestamp(t / 1e6, tz=timezone.utc).isoformat(timespec="seconds")


def _time_us(table: pa.Table) -> np.ndarray:
    col = table.column(contract.DATETIME).cast(pa.int64())
    return np.asarray(pc.fill_null(col, NO_TIME).to_numpy(), dtype=np.int64)


def load_rows(db: str | Path) -> Rows:
    """Read every row of ``db`` (all columns but the geometry) into :class:`Rows`.

    Raises:
        InputNotFoundError: when ``db`` has no embeddings.
        SchemaError, ModelMismatchError: when the files break the contract.
    """
    cols = [
        contract.H3,
        contract.LAT,
        contract.LON,
        contract.DATETIME,
        contract.VALID_FRACTION,
        contract.SENSORS,
        contract.MODALITIES,
        contract.SOURCE,
        contract.EMBEDDING,
    ]
    ds, meta = contract.open_dataset(db)
    table = ds.to_table(columns=cols)
    h3 = np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64)
    time_us = _time_us(table)
    return Rows(
        h3=h3,
        lat=np.asarray(table.column(contract.LAT).to_numpy(), dtype=np.float64),
        lon=np.asarray(table.column(contract.LON).to_numpy(), dtype=np.float64),
        time_us=time_us,
        valid_fraction=np.asarray(table.column(contract.VALID_FRACTION).to_numpy(), dtype=np.float32),
        sensors=table.column(contract.SENSORS),
        modalities=table.column(contract.MODALITIES),
        source=table.column(contract.SOURCE),
        vectors=contract.embeddings_matrix(table),
        latest=latest_positions(h3, time_us),
        model=meta.model,
        resolution=meta.h3_resolution,
    )


def attribute_table(rows: Rows) -> pa.Table:
    """The rows' attribute columns as an Arrow table (what :class:`Filter` tests)."""
    t = pa.array(rows.time_us, type=pa.int64())
    t = pc.if_else(pc.equal(t, NO_TIME), pa.scalar(None, pa.int64()), t)
    return pa.table(
        {
            contract.H3: pa.array(rows.h3, type=pa.uint64()),
            contract.LAT: pa.array(rows.lat),
            contract.LON: pa.array(rows.lon),
            contract.DATETIME: t.cast(pa.timestamp("us", tz="UTC")),
            contract.VALID_FRACTION: pa.array(rows.valid_fraction),
        }
    )


def filter_mask(rows: Rows, flt: Filter | None) -> np.ndarray:
    """Boolean mask of the rows meeting ``flt`` (same rules as search: :meth:`Filter.mask`).

    Raises:
        QueryError: a bad filter (validated against the database resolution).
    """
    if flt is None or flt.empty:
        return np.ones(len(rows), dtype=bool)
    flt.validate(rows.resolution)
    return np.asarray(flt.mask(attribute_table(rows), rows.resolution), dtype=bool)
