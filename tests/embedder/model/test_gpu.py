"""GPU vectors against CPU vectors (marked ``gpu``: deselected by default, needs CUDA)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.app.contract_db import EUROSAT, manifest, read_chips

torch = pytest.importorskip("torch")


@pytest.mark.gpu
def test_gpu_fp32_vectors_equal_cpu_vectors_within_the_stated_tolerance() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from embedder.model.embedder import GPU_TOLERANCE
    from embedder.registry import get_embedder

    rows = manifest()[:64]
    batch = read_chips([EUROSAT / r["path"] for r in rows])  # real EuroSAT chips
    cpu = get_embedder("earthvec-mm", device="cpu")
    gpu = get_embedder("earthvec-mm", device="cuda")
    assert gpu.version == cpu.version  # same numbers, same version
    a, b = cpu.embed(batch), gpu.embed(batch)
    cos = np.sum(a * b, axis=1)
    assert float(1 - cos.min()) <= GPU_TOLERANCE
    bf16 = get_embedder("earthvec-mm", device="cuda", precision="bf16")
    assert bf16.version == cpu.version + "-bf16"  # other numbers, another version
    assert float(1 - np.sum(bf16.embed(batch) * a, axis=1).min()) < 0.05
