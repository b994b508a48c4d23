"""Weight files: wrappers and prefixes, strict key checks, content hash, cache and the no-download rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from embedder.errors import InputNotFoundError, WeightsError
from embedder.pretrained import weights as wts
from embedder.pretrained.resnet import ResNetFeatures
from embedder.pretrained.specs import SPECS
from embedder.registry import get_embedder

R18 = SPECS["ssl4eo-resnet18"]


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Size]:
    return wts.expected_keys(ResNetFeatures("resnet18", 13))


def test_wrapper_and_prefix_give_the_same_weights_hash(r18_file: Path, tmp_path: Path, expected) -> None:  # noqa: ANN001
    plain = wts.load(r18_file, expected, "ssl4eo-resnet18")
    sd = torch.load(r18_file, weights_only=True)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "state_dict": {f"backbone.{k}": v for k, v in sd.items()}}, wrapped)
    got = wts.load(wrapped, expected, "ssl4eo-resnet18")
    assert got.prefix == "backbone."
    assert got.sha256 == plain.sha256
    assert set(got.state_dict) == set(expected)


def test_moco_checkpoint_keeps_the_encoder_and_ignores_head_and_queue(
    r18_file: Path, tmp_path: Path, expected
) -> None:  # noqa: ANN001
    sd = torch.load(r18_file, weights_only=True)
    moco = {f"module.encoder_q.{k}": v for k, v in sd.items()}
    moco["module.encoder_q.fc.0.weight"] = torch.zeros(512, 512)
    moco["module.encoder_k.conv1.weight"] = torch.zeros(64, 13, 7, 7)
    moco["module.queue"] = torch.zeros(128, 16)
    path = tmp_path / "moco.pth"
    torch.save({"state_dict": moco, "arch": "resnet18"}, path)
    got = wts.load(path, expected, "ssl4eo-resnet18")
    assert got.prefix == "module.encoder_q."
    assert set(got.ignored) == {"module.encoder_k.conv1.weight", "module.queue", "fc.0.weight"}
    assert got.sha256 == wts.load(r18_file, expected, "ssl4eo-resnet18").sha256


def test_missing_keys_are_listed(r18_file: Path, tmp_path: Path) -> None:
    sd = torch.load(r18_file, weights_only=True)
    del sd["layer3.1.conv2.weight"]
    path = tmp_path / "missing.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"1 missing \(e\.g\. layer3\.1\.conv2\.weight\)"):
        get_embedder("ssl4eo-resnet18", weights=path)


def test_unexpected_keys_are_listed(r18_file: Path, tmp_path: Path) -> None:
    sd = torch.load(r18_file, weights_only=True)
    sd["layer5.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "extra.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"1 unexpected \(e\.g\. layer5\.0\.conv1\.weight\)"):
        get_embedder("ssl4eo-resnet18", weights=path)


def test_resnet50_file_for_resnet18_is_refused(r50_file: Path) -> None:
    with pytest.raises(WeightsError, match="does not fit ssl4eo-resnet18"):
        get_embedder("ssl4eo-resnet18", weights=r50_file)


def test_rgb_weights_are_refused_naming_the_band_count(tmp_path: Path) -> None:
    path = wts.save_seeded(ResNetFeatures("resnet18", 3), tmp_path / "rgb.pt", 0)
    with pytest.raises(WeightsError, match="first convolution takes 3 bands, ssl4eo-resnet18 takes 13"):
        get_embedder("ssl4eo-resnet18", weights=path)


def test_classifier_head_and_missing_step_counters_are_accepted(r18_file: Path, tmp_path: Path) -> None:
    sd = torch.load(r18_file, weights_only=True)
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    path = tmp_path / "with_fc.pt"
    torch.save(sd, path)
    a = get_embedder("ssl4eo-resnet18", weights=path)
    b = get_embedder("ssl4eo-resnet18", weights=r18_file)
    assert a.version == b.version
    assert a.config()["weights"]["ignored_keys"] == ["fc.bias", "fc.weight"]


def test_a_file_that_is_no_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable torch checkpoint"):
        get_embedder("ssl4eo-resnet18", weights=path)


def test_no_weights_says_how_to_get_them() -> None:
    with pytest.raises(WeightsError, match="no built-in weights; pass --weights FILE"):
        get_embedder("ssl4eo-resnet50")


def test_unknown_name_is_not_found() -> None:
    with pytest.raises(InputNotFoundError, match="neither a file nor a published weights name"):
        get_embedder("ssl4eo-resnet18", weights="no_such_weights.pth")


def test_published_name_is_refused_without_allow_download() -> None:
    # the autouse fixture makes any download raise AssertionError; the refusal must come first
    with pytest.raises(WeightsError, match="not in the local cache .*add --allow-download to fetch"):
        get_embedder("ssl4eo-resnet50", weights="SENTINEL2_ALL_MOCO")


def test_published_name_is_found_in_the_local_cache(r18_file: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"  # $EARTHVEC_WEIGHTS_DIR in these tests
    cache.mkdir()
    (cache / R18.weights["SENTINEL2_ALL_MOCO"].filename).write_bytes(r18_file.read_bytes())
    emb = get_embedder("ssl4eo-resnet18", weights="ResNet18_Weights.SENTINEL2_ALL_MOCO")
    assert emb.version == get_embedder("ssl4eo-resnet18", weights=r18_file).version


def test_allow_download_fetches_the_published_url_once(
    r18_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        calls.append((url, hash_prefix))
        Path(dst).write_bytes(r18_file.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    emb = get_embedder("ssl4eo-resnet18", weights="SENTINEL2_ALL_MOCO", allow_download=True)
    assert calls == [(R18.weights["SENTINEL2_ALL_MOCO"].url, "59bfdff9")]
    assert emb.config()["weights"]["file"] == "resnet18_sentinel2_all_moco-59bfdff9.pth"
    get_embedder("ssl4eo-resnet18", weights="SENTINEL2_ALL_MOCO")  # now cached: no second fetch
    assert len(calls) == 1


def test_timm_plugin_needs_timm_or_says_how_to_install() -> None:
    from embedder.pretrained.embedder import timm_available

    if timm_available():
        pytest.skip("timm is importable here; test_timm_matches_the_ssl4eo_plugin covers it")
    with pytest.raises(WeightsError, match=r"timm:resnet50 with timm needs the timm package"):
        get_embedder("timm:resnet50", weights=__file__)


def test_registry_maps_family_names_and_knows_which_models_take_weights() -> None:
    from embedder.errors import EarthvecError
    from embedder.registry import takes_weights

    assert takes_weights("ssl4eo-resnet50") and takes_weights("timm:convnext_tiny")
    assert not takes_weights("earthvec-tex")
    with pytest.raises(WeightsError, match="name the timm architecture after the colon"):
        get_embedder("timm:")
    with pytest.raises(EarthvecError, match="unknown model 'nope:resnet50'"):
        get_embedder("nope:resnet50")
