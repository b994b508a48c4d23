"""Registers the pretrained-model embedders without importing torch (imported on use).

``ssl4eo-resnet50`` and ``ssl4eo-resnet18``: the SSL4EO-S12 Sentinel-2 ResNets (13 L1C bands,
``DN / 10000``, 224 px; see :mod:`embedder.pretrained.specs`). ``timm:<arch>``: any timm
architecture with a user weights file (needs the ``models`` extra). All of them take
``weights`` (a file, or a published name with ``allow_download=True``), ``device``,
``precision`` (``fp32``/``bf16``/``fp16``) and ``batch_size``.
"""

from __future__ import annotations

from typing import Any

from embedder.interface import Embedder, register


def _ssl4eo(name: str, **kwargs: Any) -> Embedder:
    from embedder.pretrained.embedder import PretrainedEmbedder
    from embedder.pretrained.specs import SPECS

    return PretrainedEmbedder(SPECS[name], **kwargs)


@register("ssl4eo-resnet50")
def make_ssl4eo_resnet50(**kwargs: Any) -> Embedder:
    """SSL4EO-S12 ResNet-50 on 13 Sentinel-2 L1C bands, weights from ``weights=FILE_OR_NAME``."""
    return _ssl4eo("ssl4eo-resnet50", **kwargs)


@register("ssl4eo-resnet18")
def make_ssl4eo_resnet18(**kwargs: Any) -> Embedder:
    """SSL4EO-S12 ResNet-18 on 13 Sentinel-2 L1C bands, weights from ``weights=FILE_OR_NAME``."""
    return _ssl4eo("ssl4eo-resnet18", **kwargs)


@register("timm:")
def make_timm(arch: str = "", input_spec: Any = None, **kwargs: Any) -> Embedder:
    """``timm:<arch>``: a timm architecture with a user weights file.

    Args:
        arch: the timm model name (``resnet50``, ``convnext_tiny`` ...).
        input_spec: an :class:`~embedder.pretrained.specs.InputSpec` (default: the SSL4EO-S12
            13-band L1C input, ``DN / 10000`` at 224 px).
        **kwargs: as for the SSL4EO plugins.
    """
    from embedder.errors import WeightsError
    from embedder.pretrained.embedder import PretrainedEmbedder
    from embedder.pretrained.specs import timm_spec

    if not arch:
        raise WeightsError("name the timm architecture after the colon, e.g. --model timm:resnet50")
    if kwargs.get("allow_download"):
        raise WeightsError(
            f"timm:{arch} loads only local files; pass --weights FILE (no published table to download from)"
        )
    return PretrainedEmbedder(timm_spec(arch, input_spec), **kwargs)


for _f in (make_ssl4eo_resnet50, make_ssl4eo_resnet18, make_timm):
    _f.takes_weights = True  # type: ignore[attr-defined]
