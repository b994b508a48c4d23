"""Checkpoints, registry access, determinism of training, torch-free imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedder.errors import InputNotFoundError, ModelMismatchError
from embedder.registry import available_embedders, get_embedder, model_id

ROOT = Path(__file__).resolve().parents[3]


def test_checkpoint_round_trip_keeps_version_and_vectors(tmp_path, random_ckpt, eurosat_chips) -> None:
    from embedder.model.checkpoint import load_checkpoint, save_checkpoint
    from embedder.model.embedder import MultimodalEmbedder

    path = save_checkpoint(random_ckpt, tmp_path / "m.pt")
    back = load_checkpoint(path)
    assert back.version == random_ckpt.version and len(back.version) == 12
    assert back.normalisation == random_ckpt.normalisation
    batch = eurosat_chips.batch.take(np.arange(8))
    np.testing.assert_array_equal(
        MultimodalEmbedder(back, device="cpu").embed(batch),
        MultimodalEmbedder(random_ckpt, device="cpu").embed(batch),
    )
    # saving the loaded checkpoint again keeps the hash
    assert load_checkpoint(save_checkpoint(back, tmp_path / "again.pt")).version == back.version


def test_version_changes_with_weights(random_ckpt) -> None:
    from embedder.model.checkpoint import random_checkpoint

    assert random_checkpoint(1).version != random_ckpt.version
    assert random_checkpoint(0).version == random_ckpt.version


def test_edited_checkpoint_is_refused(tmp_path, random_ckpt) -> None:
    import torch

    from embedder.model.checkpoint import load_checkpoint, save_checkpoint

    path = save_checkpoint(random_ckpt, tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)
    key = next(k for k, v in raw["state_dict"].items() if v.is_floating_point())
    raw["state_dict"][key] = raw["state_dict"][key] + 1.0
    torch.save(raw, path)
    with pytest.raises(ModelMismatchError, match="weights hash"):
        load_checkpoint(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelMismatchError):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(InputNotFoundError, match="earthvec train"):
        load_checkpoint(tmp_path / "missing.pt")


def test_registry_builds_earthvec_mm(tmp_path, random_ckpt, eurosat_chips) -> None:
    from embedder.model.checkpoint import save_checkpoint

    assert "earthvec-mm" in available_embedders()
    path = save_checkpoint(random_ckpt, tmp_path / "m.pt")
    emb = get_embedder("earthvec-mm", checkpoint=str(path), device="cpu")
    assert model_id(emb) == f"earthvec-mm@{random_ckpt.version}"
    assert emb.dim == 64 and emb.config()["model"]["embed_dim"] == 128  # 30 learned + 34 signature
    assert "sentinel2-l1c-eurosat" in emb.normalisation()
    x = emb.embed(eurosat_chips.batch.take(np.arange(5)))
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_missing_default_checkpoint_error_names_the_fix(monkeypatch) -> None:
    from embedder.model import checkpoint

    monkeypatch.setattr(checkpoint, "candidate_paths", lambda: [Path("/nonexistent/earthvec-mm.pt")])
    with pytest.raises(InputNotFoundError, match="earthvec train"):
        checkpoint.default_checkpoint()


def test_shipped_checkpoint_loads_if_present() -> None:
    from embedder.model.checkpoint import candidate_paths, load_checkpoint

    shipped = [p for p in candidate_paths() if p.is_file()]
    if not shipped:
        pytest.skip("no shipped checkpoint in this checkout (run `earthvec train`)")
    ckpt = load_checkpoint(shipped[0])
    assert shipped[0].stat().st_size < 5e6
    assert ckpt.info.get("objectives") and ckpt.train_config.get("steps", 0) > 0


def test_tiny_training_is_deterministic() -> None:
    import torch

    from embedder.model.config import TrainConfig
    from embedder.model.train import train

    cfg = TrainConfig(
        steps=2, batch_eurosat=8, batch_pairs=4, batch_landsat=4, batch_global=0, recalibrate_chips=8
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = train(cfg, device="cpu")
        b = train(cfg, device="cpu")
        c = train(TrainConfig(**{**cfg.__dict__, "seed": 1}), device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert a.version == b.version
    assert c.version != a.version
    assert a.info["objectives"] == ["views", "cross_modal", "colearn", "mae"]
    assert set(a.info["sources"]) >= {"eurosat_ms", "bigearthnet_s1s2_pairs", "landsat8_scenes"}
    # training moved the weights away from the initialisation
    from embedder.model.checkpoint import random_checkpoint

    assert a.version != random_checkpoint(0).version


def test_registry_and_plugin_import_without_torch() -> None:
    code = (
        "import sys; import embedder.registry as r; names = r.available_embedders(); "
        "assert 'earthvec-mm' in names, names; import embedder.model.config, embedder.model.probes; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
