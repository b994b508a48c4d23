"""Host-to-device copies for the torch embedders (imported only where torch already is).

On a CUDA device a batch is copied from pinned (page-locked) host memory with
``non_blocking=True``, so the copy overlaps the GPU's work on the previous batch; on the
CPU it is a plain zero-copy view of the numpy array.
"""

from __future__ import annotations

import numpy as np
import torch


def to_device(
    array: np.ndarray, device: torch.device | str, dtype: np.dtype | type = np.float32
) -> torch.Tensor:
    """``array`` as a tensor on ``device`` (pinned memory and an asynchronous copy on CUDA)."""
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=dtype))
    dev = torch.device(device)
    if dev.type == "cuda":
        return t.pin_memory().to(dev, non_blocking=True)
    return t.to(dev)
