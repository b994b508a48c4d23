"""CUDA vectors of the SSL4EO plugins against CPU vectors (``-m gpu``; skipped without CUDA).

Tolerance: fp32 (the embedder turns cuDNN's TF32 off for it): every component of every unit
vector within 1e-4 of the CPU one, and each CUDA-CPU distance under 1% of the median distance
between two chips' CPU vectors. bf16 autocast on CUDA: cosine >= 0.99 with fp32 on CPU (a loose
bound: with seeded random weights all chips' vectors are within cosine 0.98 of each other).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embedder.registry import get_embedder
from tests.embedder.pretrained.conftest import chip_batch, eurosat_files

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(
    ("model", "file_fixture"), [("ssl4eo-resnet18", "r18_file"), ("ssl4eo-resnet50", "r50_file")]
)
def test_cuda_vectors_match_cpu(model: str, file_fixture: str, request: pytest.FixtureRequest) -> None:
    weights: Path = request.getfixturevalue(file_fixture)
    batch = chip_batch(eurosat_files(32))
    cpu = get_embedder(model, weights=weights, device="cpu").embed(batch)
    gpu = get_embedder(model, weights=weights, device="cuda", batch_size=16)
    assert gpu.version == get_embedder(model, weights=weights, device="cpu").version  # device is not in it
    got = gpu.embed(batch)
    assert np.abs(got - cpu).max() <= 1e-4
    spread = np.median(np.linalg.norm(cpu[:, None] - cpu[None], axis=2)[~np.eye(len(cpu), dtype=bool)])
    assert np.linalg.norm(got - cpu, axis=1).max() <= 0.01 * spread
    bf16 = get_embedder(model, weights=weights, device="cuda", precision="bf16").embed(batch)
    assert np.sum(bf16 * cpu, axis=1).min() >= 0.99
