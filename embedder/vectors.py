"""Small vector and hashing helpers shared by every embedder (a leaf module: no earthvec imports)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def config_hash(*parts: Any) -> str:
    """A short stable hash of JSON-able parts and raw bytes (for embedder versions).

    Args:
        *parts: JSON-able values (hashed as sorted-key JSON) or raw ``bytes``.

    Returns:
        The first 12 hex digits of a SHA-256 over the parts.
    """
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero) as float32.

    Args:
        x: (N, D) array.

    Returns:
        (N, D) float32 array of unit-length (or zero) rows.
    """
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)
