"""Embedders by name: ``get_embedder(name)`` builds one from the registered factories.

Factories import their heavy dependencies (torch) only when called, so ``embedder`` itself
and the layers above import without torch. The interface and the registration decorator
live in :mod:`embedder.interface`, the shared helpers in :mod:`embedder.vectors`; both are
re-exported here for compatibility.
"""

from __future__ import annotations

from collections.abc import Callable
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
    "takes_weights",
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
        name: registry name, or ``family:arch`` for a registered ``family:`` factory
            (``timm:resnet50``), which then gets ``arch=...``.
        **kwargs: passed to the factory (pretrained models: ``weights``, ``allow_download``,
            ``device``, ``precision``, ``batch_size``).

    Raises:
        EarthvecError: for an unknown name.
    """
    factory, extra = _factory(name)
    return factory(**extra, **kwargs)


def takes_weights(name: str) -> bool:
    """Whether ``name`` is a pretrained model that loads user weights (``--weights``)."""
    return bool(getattr(_factory(name)[0], "takes_weights", False))


def _factory(name: str) -> tuple[Callable[..., Embedder], dict[str, Any]]:
    """The factory of ``name``; ``family:arch`` names (``timm:resnet50``) use the ``family:`` one."""
    _load_builtin()
    if name in FACTORIES:
        return FACTORIES[name], {}
    family, sep, arch = name.partition(":")
    if sep and arch and f"{family}:" in FACTORIES:
        return FACTORIES[f"{family}:"], {"arch": arch}
    raise EarthvecError(f"unknown model {name!r}; available: {', '.join(available_embedders())}")


def _load_builtin() -> None:
    # importing registers; each module keeps torch imports inside its factory
    import embedder.baseline  # noqa: F401
    import embedder.model.plugin  # noqa: F401
    import embedder.pretrained.plugin  # noqa: F401
    import embedder.tex.plugin  # noqa: F401
