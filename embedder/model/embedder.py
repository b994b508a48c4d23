"""The ``earthvec-mm`` embedder: a trained checkpoint behind the registry's Embedder protocol.

Numbers and versions: a model version names the numbers it produces. By default every
device computes in float32 (TF32 off on CUDA), so vectors of one version agree across
CPU and GPU within :data:`GPU_TOLERANCE` (cosine distance per vector; checked by
``tests/embedder/model/test_gpu.py`` where a GPU exists) and shards from both may share a
database. ``precision="bf16"`` (CUDA autocast, faster, about 1e-2 apart) is another
version, ``<weights hash>-bf16``, so its rows never mix silently with float32 rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedder.batch import ChipBatch
from embedder.errors import EarthvecError
from embedder.model.checkpoint import Checkpoint, load_checkpoint
from embedder.model.config import to_dict
from embedder.model.prep import to_inputs
from embedder.vectors import l2_normalise

NAME = "earthvec-mm"
PRECISIONS = ("fp32", "bf16")
GPU_TOLERANCE = 1e-4
"""Largest cosine distance between a float32 GPU vector and the CPU vector of the same chip."""


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class MultimodalEmbedder:
    """Embeds chips of any modality subset and any band subset with one checkpoint.

    Attributes:
        name: registry name.
        version: the checkpoint's weights hash.
        dim: embedding length.
    """

    def __init__(
        self,
        checkpoint: Checkpoint | str | Path | None = None,
        device: str | None = None,
        batch_size: int = 256,
        name: str = NAME,
        precision: str = "fp32",
    ) -> None:
        if precision not in PRECISIONS:
            raise EarthvecError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        self.ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        self.name = name
        self.precision = precision
        self.version = self.ckpt.version + ("" if precision == "fp32" else f"-{precision}")
        self.dim = self.ckpt.model_config.out_dim
        self.device = pick_device(device)
        if precision == "bf16" and self.device.type != "cuda":
            raise EarthvecError("precision bf16 needs a CUDA device; use the default fp32 on the CPU")
        self.batch_size = batch_size
        self.net = self.ckpt.build().to(self.device)
        if self.device.type == "cpu":
            self.net = self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def config(self) -> dict[str, Any]:
        """Model configuration plus training provenance (stored in Parquet metadata)."""
        return {
            "model": to_dict(self.ckpt.model_config),
            "train": self.ckpt.train_config,
            "info": self.ckpt.info,
        }

    def normalisation(self) -> dict[str, Any]:
        """Per-sensor, per-band ``[mean, std]`` used to standardise inputs."""
        return self.ckpt.normalisation

    @torch.inference_mode()
    def embed_unnormalised(self, batch: ChipBatch) -> np.ndarray:
        """Whitened fused (N, dim) vectors before L2 normalisation (zeros where a chip has no data)."""
        n = len(batch)
        out = np.zeros((n, self.dim), dtype=np.float32)
        cuda = self.device.type == "cuda"
        for start in range(0, n, self.batch_size):
            rows = np.arange(start, min(n, start + self.batch_size))
            inputs = to_inputs(
                batch.take(rows), self.ckpt.normalisation, self.ckpt.model_config.chip_px, self.device
            )
            bf16 = cuda and self.precision == "bf16"
            with (
                torch.backends.cudnn.flags(enabled=True, allow_tf32=False),
                torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=bf16),
            ):
                z = self.net.embed(inputs)
            out[rows] = z.float().cpu().numpy()
        return out

    def embed(self, batch: ChipBatch) -> np.ndarray:
        """Unit-length (N, dim) float32 embeddings; chips with no valid data get zero rows."""
        return l2_normalise(self.embed_unnormalised(batch))
