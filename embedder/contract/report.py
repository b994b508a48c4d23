"""The build record ``DB/build.json``: what the last build run did.

It is a log for people, not the published state of the database (that is
:mod:`~embedder.contract.manifest`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class BuildReport:
    """What a build did (written to ``DB/build.json``).

    Attributes:
        db: the database folder.
        model: ``name@version`` of the embedder.
        resolution: H3 resolution of the rows.
        rows_planned: rows the build set out to write.
        rows_written: rows written by this run (finished shards are skipped).
        rows_dropped_empty: rows without a valid pixel.
        rows_dropped_low_valid: rows under ``--min-valid``.
        items_outside_datetime: inputs outside ``--datetime``.
        shards_total, shards_written, shards_skipped: shard counts.
        seconds: wall time of the build.
        generation: the manifest generation the build published (0: not published).
        rows_total: rows in the published generation.
    """

    db: str
    model: str
    resolution: int
    rows_planned: int
    rows_written: int = 0
    rows_dropped_empty: int = 0
    rows_dropped_low_valid: int = 0
    items_outside_datetime: int = 0
    shards_total: int = 0
    shards_written: int = 0
    shards_skipped: int = 0
    seconds: float = 0.0
    generation: int = 0
    rows_total: int = 0

    @property
    def rows_per_second(self) -> float:
        """Rows written per second of build time."""
        return self.rows_written / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        d = dict(self.__dict__)
        d["rows_per_second"] = round(self.rows_per_second, 1)
        return d
