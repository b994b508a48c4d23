"""A registry of embedders by name, and the interface every embedder follows.

Embedders register a factory under a name; ``get_embedder(name)`` builds one. Factories
import their heavy dependencies (torch) only when called, so ``embedder`` itself and the
layers above import without torch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from embedder.batch import ChipBatch
from embedder.errors import EarthvecError

DEFAULT_MODEL = "earthvec-tex"
"""The fitted spectral-texture embedder (``embedder/tex``); ``earthvec-mm`` is the torch network,
``stats`` the channel-statistics baseline."""


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


_FACTORIES: dict[str, Callable[..., Embedder]] = {}


def register(name: str) -> Callable[[Callable[..., Embedder]], Callable[..., Embedder]]:
    """Decorator registering an embedder factory under ``name``."""

    def deco(factory: Callable[..., Embedder]) -> Callable[..., Embedder]:
        _FACTORIES[name] = factory
        return factory

    return deco


def available_embedders() -> list[str]:
    """Registered embedder names."""
    _load_builtin()
    return sorted(_FACTORIES)


def get_embedder(name: str = DEFAULT_MODEL, **kwargs: Any) -> Embedder:
    """Build the embedder registered as ``name``.

    Raises:
        EarthvecError: for an unknown name.
    """
    _load_builtin()
    if name not in _FACTORIES:
        raise EarthvecError(f"unknown model {name!r}; available: {', '.join(available_embedders())}")
    return _FACTORIES[name](**kwargs)


def model_id(emb: Embedder) -> str:
    """The ``name@version`` string written into every row's ``model`` column."""
    return f"{emb.name}@{emb.version}"


def config_hash(*parts: Any) -> str:
    """A short stable hash of JSON-able parts and raw bytes (for embedder versions)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero) as float32."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def _load_builtin() -> None:
    # importing registers; each module keeps torch imports inside its factory
    import embedder.baseline  # noqa: F401
    import embedder.model.plugin  # noqa: F401
    import embedder.tex.plugin  # noqa: F401
