"""Registers ``earthvec-tex`` and its pieces (for the ``earthvec eval`` table)."""

from __future__ import annotations

import copy
from typing import Any

from embedder.interface import Embedder, register


@register("earthvec-tex")
def make_tex(**kwargs: Any) -> Embedder:
    """The shipped fitted model, or ``model=PATH`` / a :class:`~embedder.tex.model.TexModel`."""
    from embedder.tex.model import TexEmbedder

    return TexEmbedder(**kwargs)


def piece(shares: dict[str, float], name: str, **kwargs: Any) -> Embedder:
    """The shipped model with other part shares (a piece of it on its own, for ablations)."""
    from embedder.tex.model import TexEmbedder, TexModel, load_model

    base = kwargs.get("model")
    model = base if isinstance(base, TexModel) else load_model(base)
    config = copy.deepcopy(model.config)
    config["shares"] = {**config["shares"], **shares}
    return TexEmbedder(TexModel(config, model.arrays), name=name)  # the fitted arrays are shared


@register("tex-signature")
def make_signature_only(**kwargs: Any) -> Embedder:
    """Only the fitted optical signature (and the other modalities): no texture."""
    return piece({"texture": 0.0}, "tex-signature", **kwargs)


@register("tex-texture")
def make_texture_only(**kwargs: Any) -> Embedder:
    """Only the multi-scale texture part (and the other modalities): no spectral signature."""
    return piece({"signature": 0.0}, "tex-texture", **kwargs)


def unfitted_model(**kwargs: Any) -> Any:
    """The shipped model's configuration with nothing learned: identity statistics and whitening.

    The untrained baseline of the ``earthvec eval`` table (the analogue of a random-init
    network): the same features and shares, no fitted normalisation, components, whitening
    or cross-modal predictors.
    """
    import numpy as np

    from embedder.tex.model import TexModel, load_model

    base = load_model(kwargs.get("model"))
    arrays: dict[str, Any] = {}
    for k, v in base.arrays.items():
        if k.startswith("pred:"):
            continue
        if k.endswith("_mu") or k == "sig_mean":
            arrays[k] = np.zeros_like(v)
        elif k.endswith("_sd") or k.endswith("_rms"):
            arrays[k] = np.ones_like(v)
        elif k in ("opt_cov", "sig_proj"):
            arrays[k] = np.eye(len(v), dtype=v.dtype)
        elif k == "opt_pcs":
            arrays[k] = np.eye(*v.shape, dtype=v.dtype)
        else:
            arrays[k] = v
    return TexModel(copy.deepcopy(base.config), arrays)


@register("tex-unfitted")
def make_unfitted(**kwargs: Any) -> Embedder:
    """earthvec-tex's features with nothing fitted (the untrained baseline)."""
    from embedder.tex.model import TexEmbedder

    return TexEmbedder(unfitted_model(**kwargs), name="tex-unfitted")
