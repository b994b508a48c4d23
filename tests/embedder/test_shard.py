import numpy as np
import pytest

from embedder import shard
from embedder.errors import EarthvecError
from embedder.shard import CPU_BATCH, CUDA_BATCH, CUDA_BATCH_MAX, CUDA_BATCH_MIN, choose_batch_size


def test_requested_batch_size_wins_and_must_be_positive():
    assert choose_batch_size("cuda", 17) == 17
    assert choose_batch_size(None, 3) == 3
    with pytest.raises(EarthvecError, match="--batch-size 0"):
        choose_batch_size("cpu", 0)


def test_cpu_batch_is_fixed():
    assert choose_batch_size(None) == CPU_BATCH
    assert choose_batch_size("cpu") == CPU_BATCH


@pytest.mark.parametrize(
    ("free_gib", "expected"),
    [
        (None, CUDA_BATCH),  # free memory unknown
        (0.25, CUDA_BATCH_MIN),  # a small card: at least the floor
        (8, 256),  # 8 GiB * 0.25 / 8 MiB = 256
        (40, 1280),
        (139, 4352),  # an H200 with 139 GiB free
        (512, CUDA_BATCH_MAX),  # capped
    ],
)
def test_cuda_batch_follows_free_memory(monkeypatch, free_gib, expected):
    free = None if free_gib is None else int(free_gib * 2**30)
    monkeypatch.setattr(shard, "cuda_free_bytes", lambda device: free)
    assert choose_batch_size("cuda:0") == expected


def test_to_device_on_cpu_is_the_array():
    torch = pytest.importorskip("torch")
    from embedder.torchio import to_device

    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    t = to_device(a, "cpu")
    assert t.dtype == torch.float32 and t.device.type == "cpu"
    np.testing.assert_array_equal(t.numpy(), a.astype(np.float32))
