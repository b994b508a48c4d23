"""PCA whitening with shrinkage (numpy).

The output transform of the learned embedder and of the whitened channel-statistics baseline.
"""

from __future__ import annotations

import numpy as np


def whitening(z: np.ndarray, eps: float, dims: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (D, dims) projection that whiten the rows of ``z`` onto its leading principal axes.

    Each axis is divided by its standard deviation plus ``eps`` times the largest one
    (shrinkage keeps near-empty directions from being blown up into noise). Columns beyond
    the data's rank stay zero.

    Args:
        z: (N, D) samples.
        eps: shrinkage, as a share of the largest standard deviation.
        dims: leading axes to keep (default all ``D``).
    """
    z = np.asarray(z, dtype=np.float64)
    mean = z.mean(0)
    _, s, vt = np.linalg.svd(z - mean, full_matrices=False)
    s = s / np.sqrt(len(z))
    proj = vt.T / (s + eps * s.max())[None, :]
    out = np.zeros((z.shape[1], dims or z.shape[1]))
    k = min(out.shape[1], proj.shape[1])
    out[:, :k] = proj[:, :k]
    return mean, out
