"""Errors raised by earthvec.

Every error derives from :class:`EarthvecError` and also from the matching built-in
exception, so callers can catch a whole family (``except EarthvecError``) or use the
usual built-ins (``except FileNotFoundError``). Messages name the bad input and the fix.
"""

from __future__ import annotations


class EarthvecError(Exception):
    """Root of all earthvec errors."""


class InputNotFoundError(EarthvecError, FileNotFoundError):
    """A source file, glob or database path does not exist or matches nothing."""


class RasterError(EarthvecError, ValueError):
    """A raster cannot be used: unreadable, no CRS, wrong band count, all nodata."""


class SchemaError(EarthvecError, ValueError):
    """Parquet data does not follow the earthvec contract."""


class ModelMismatchError(EarthvecError, ValueError):
    """Embeddings or an index come from a different model version than expected."""


class IndexMismatchError(EarthvecError, ValueError):
    """A FAISS index sidecar does not match the embeddings it sits beside."""


class QueryError(EarthvecError, ValueError):
    """A query is invalid: bad H3 cell, lat/lon out of range, unknown cell."""


class SeedError(EarthvecError, ValueError):
    """Seed labels cannot be used: unreadable, one class only, none inside the database."""


class SensorError(EarthvecError, KeyError):
    """An unknown sensor preset or band name."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class SourceError(EarthvecError, ValueError):
    """A source specification, date window or catalogue query is malformed."""


class WeightsError(EarthvecError, ValueError):
    """Model weights cannot be found, fetched or loaded into the model's architecture."""


class MissingBandError(EarthvecError, ValueError):
    """Chips lack a band that a model needs (it is refused, never zero-filled)."""


class DatabaseLockedError(EarthvecError, BlockingIOError):
    """Another process is writing the database and the caller asked not to wait (``--no-wait``)."""


class StaleDataError(EarthvecError, ValueError):
    """Derived data (index, pyramid level, prediction map) was made from other embeddings or another model."""
