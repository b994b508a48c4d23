"""The interface every embedder follows and the table plugins register into (a leaf module).

Plugins (``embedder.baseline``, ``embedder.model.plugin``) import :func:`register` from
here; :mod:`embedder.registry` imports the plugins and looks factories up. Neither imports
the other's importer, so there is no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from embedder.batch import ChipBatch


@runtime_checkable
class Embedder(Protocol):
    """What the pipeline needs from an embedder.

    Attributes:
        name: registry name, e.g. ``"stats"``.
        version: short hash of configuration and weights; two embedders with equal
            ``name@version`` produce identical vectors.
        dim: length of the vectors.

    An embedder may also set ``fork_safe = True`` (numpy-only code) to let global builds
    fork worker processes around it; torch embedders leave it unset.
    """

    name: str
    version: str
    dim: int

    def config(self) -> dict[str, Any]:
        """JSON-able configuration stored in Parquet metadata."""
        ...

    def normalisation(self) -> dict[str, Any]:
        """JSON-able normalisation statistics the embedder applies."""
        ...

    def embed(self, batch: ChipBatch) -> np.ndarray:
        """Embed N chips into an (N, dim) float32 array of unit-length rows."""
        ...


FACTORIES: dict[str, Callable[..., Embedder]] = {}
"""Registered factories by name (filled by :func:`register` when a plugin is imported)."""


def register(name: str) -> Callable[[Callable[..., Embedder]], Callable[..., Embedder]]:
    """Decorator registering an embedder factory under ``name``.

    Args:
        name: the registry name (``--model`` on the command line).

    Returns:
        A decorator that stores the factory and returns it unchanged.
    """

    def deco(factory: Callable[..., Embedder]) -> Callable[..., Embedder]:
        FACTORIES[name] = factory
        return factory

    return deco


def model_id(emb: Embedder) -> str:
    """The ``name@version`` string written into every row's ``model`` column."""
    return f"{emb.name}@{emb.version}"
