"""Registers the ``earthvec-mm`` embedder without importing torch (imported on use)."""

from __future__ import annotations

from typing import Any

from embedder.interface import Embedder, register


@register("earthvec-mm")
def make_multimodal(**kwargs: Any) -> Embedder:
    """Build the multimodal embedder from a checkpoint.

    Args:
        **kwargs: passed to :class:`~embedder.model.embedder.MultimodalEmbedder`:
            ``checkpoint`` (path, default the shipped ``earthvec-mm.pt``, or a loaded
            checkpoint), ``device`` (``"cpu"``/``"cuda"``, default CUDA when available),
            ``batch_size`` (chips per forward pass).
    """
    from embedder.model.embedder import MultimodalEmbedder

    return MultimodalEmbedder(**kwargs)
