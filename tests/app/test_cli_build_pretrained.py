"""``earthvec build --model ssl4eo-resnet50 --weights FILE`` end to end on real EuroSAT chips."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli.main import main
from embedder import contract
from embedder.pretrained.resnet import ResNetFeatures
from embedder.pretrained.weights import save_seeded
from tests.embedder.pretrained.conftest import chip_batch, eurosat_files


@pytest.fixture(autouse=True)
def _no_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setenv("EARTHVEC_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def test_build_with_ssl4eo_resnet50_weights_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = eurosat_files(2)
    src = tmp_path / "chips"
    src.mkdir()
    for f in files:
        shutil.copy(f, src / f.name)
    weights = save_seeded(ResNetFeatures("resnet50", 13), tmp_path / "r50.pt", 7)
    argv = [
        "build",
        str(tmp_path / "db"),
        "--source",
        str(src / "*.tif"),
        "--sensor",
        "sentinel2-l1c-eurosat",
    ]
    argv += ["--model", "ssl4eo-resnet50", "--weights", str(weights)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 rows written" in out and "model ssl4eo-resnet50@" in out
    meta = contract.read_meta(tmp_path / "db")
    assert meta.model_name == "ssl4eo-resnet50" and meta.dim == 2048
    assert meta.model_config["weights"]["file"] == "r50.pt"
    assert meta.normalisation["units_per_physical"] == 10000.0
    table = contract.read_table(tmp_path / "db").to_pandas()
    vecs = np.stack(table["embedding"])
    assert vecs.shape == (2, 2048)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert set(table["model"]) == {f"ssl4eo-resnet50@{meta.model_version}"}
    # the rows hold what the embedder gives for the same chips
    from embedder.registry import get_embedder

    emb = get_embedder("ssl4eo-resnet50", weights=weights)
    by_file = {Path(s[0]).name: v for s, v in zip(table["source"], vecs, strict=True)}
    want = emb.embed(chip_batch([src / f.name for f in files]))
    np.testing.assert_allclose(np.stack([by_file[f.name] for f in files]), want, atol=1e-5)
    # a re-run resumes: every shard is already there
    assert main(argv) == 0
    assert "0 rows written" in capsys.readouterr().out


def test_published_name_without_allow_download_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(eurosat_files(1)[0])
    argv = ["build", str(tmp_path / "db"), "--source", src, "--model", "ssl4eo-resnet50"]
    assert main([*argv, "--weights", "SENTINEL2_ALL_MOCO"]) == 1
    err = capsys.readouterr().err
    assert "not in the local cache" in err and "--allow-download" in err
    assert not (tmp_path / "db").exists()


def test_weights_for_a_model_with_built_in_weights_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(eurosat_files(1)[0])
    assert main(["build", str(tmp_path / "db"), "--source", src, "--weights", "x.pt"]) == 1
    assert "has its weights built in" in capsys.readouterr().err


def test_pretrained_model_without_weights_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(eurosat_files(1)[0])
    assert main(["build", str(tmp_path / "db"), "--source", src, "--model", "ssl4eo-resnet18"]) == 1
    assert "pass --weights FILE" in capsys.readouterr().err
