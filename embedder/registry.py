"""Embedders by name: ``get_embedder(name)`` builds one from the registered factories.

Factories import their heavy dependencies (torch) only when called, so ``embedder`` itself
and the layers above import without torch. The interface and the registration decorator
live in :mod:`embedder.interface`, the shared helpers in :mod:`embedder.vectors`; both are
re-exported here for compatibility.
"""

from __future__ import annotations

from typing import Any

from embedder.errors import EarthvecError
from embedder.interface import FACTORIES, Embedder, model_id, register
from embedder.vectors import config_hash, l2_normalise

__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "available_embedders",
    "config_hash",
    "get_embedder",
    "l2_normalise",
    "model_id",
    "register",
]

DEFAULT_MODEL = "earthvec-tex"
"""The fitted spectral-texture embedder (``embedder/tex``); ``earthvec-mm`` is the torch network,
``stats`` the channel-statistics baseline."""

def available_embedders() -> list[str]:
    """Registered embedder names."""
    _load_builtin()
    return sorted(FACTORIES)


def get_embedder(name: str = DEFAULT_MODEL, **kwargs: Any) -> Embedder:
    """Build the embedder registered as ``name``.

    Args:
        name: registry name.
        **kwargs: passed to the factory.

    Raises:
        EarthvecError: for an unknown name.
    """
    _load_builtin()
    if name not in FACTORIES:
        raise EarthvecError(f"unknown model {name!r}; available: {', '.join(available_embedders())}")
    return FACTORIES[name](**kwargs)


def _load_builtin() -> None:
    # importing registers; each module keeps torch imports inside its factory
    import embedder.baseline  # noqa: F401
    import embedder.model.plugin  # noqa: F401
    import embedder.tex.plugin  # noqa: F401
