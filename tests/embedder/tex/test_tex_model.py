"""earthvec-tex end to end: shipped model, reproducible fit, any band or modality subset, quality."""

from __future__ import annotations

import numpy as np
import pytest

from embedder import datapath
from embedder.batch import ChipBatch
from embedder.model import data as sources
from embedder.model import probes
from embedder.registry import DEFAULT_MODEL, get_embedder


@pytest.fixture(scope="module")
def chips() -> sources.LabelledChips:
    return sources.load_eurosat()


@pytest.fixture(scope="module")
def tex():  # noqa: ANN201
    return get_embedder("earthvec-tex")


def test_default_model_is_tex_and_numpy_only(tex) -> None:
    assert DEFAULT_MODEL == "earthvec-tex"
    assert tex.dim % 8 == 0 and tex.fork_safe


def test_vectors_are_unit_and_deterministic(tex, chips) -> None:
    b = chips.batch.take(np.arange(20))
    v = tex.embed(b)
    assert v.shape == (20, tex.dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(v, tex.embed(b))
    np.testing.assert_allclose(tex.embed(b.take(np.arange(5))), v[:5], rtol=1e-5, atol=1e-6)


def test_refit_reproduces_the_shipped_version(tex) -> None:
    from embedder.tex.fit import fit_model

    assert fit_model().version == tex.version


def test_any_band_subset_and_missing_modalities(tex, chips) -> None:
    b = chips.batch.take(np.arange(10))
    full = tex.embed(b)
    rgb = tex.embed(ChipBatch({"optical": b.modalities["optical"].select_bands(["B04", "B03", "B02"])}))
    assert np.isfinite(rgb).all()
    assert (np.sum(full * rgb, axis=1) > 0.3).all()  # imputed bands keep a chip near itself
    empty = ChipBatch({"optical": b.modalities["optical"].take(np.arange(2))})
    empty.modalities["optical"].data[:] = np.nan
    empty.modalities["optical"].present[:] = False
    assert not tex.embed(empty).any()  # no data, zero vector


def test_sentinel1_only_chip_finds_its_sentinel2_twin(tex) -> None:
    from embedder.model.evaluate import ben_crops

    s2, s1, pid = ben_crops(datapath.data_dir())
    a, b = tex.embed(s1), tex.embed(s2)
    top1 = float((pid[np.argmax(a @ b.T, axis=1)] == pid).mean())
    assert top1 >= 0.667, top1  # earthvec-mm's figure before this model


def test_region_holdout_beats_statistics_whitening_and_unfitted(tex, chips) -> None:
    """Fails for an unfitted model: the hold-out was never fitted or tuned on."""
    from embedder.model.evaluate import WhitenedStats, unlabelled_batches, with_bands

    y = chips.labels
    te = probes.region_holdout(chips.lat, chips.lon)
    tr = ~te
    half = ("B02", "B03", "B04", "B08", "B11", "B12")

    def scores(emb) -> tuple[float, float, float]:  # noqa: ANN001
        x = emb.embed(chips.batch)
        xh = emb.embed(with_bands(chips.batch, half))
        folds = probes.spatial_folds(chips.lat[tr], chips.lon[tr], 5, 0)
        return (
            float((probes.knn_predict(x[tr], y[tr], x[te], 5) == y[te]).mean()),
            probes.blocked_cv(x[tr], y[tr], folds, "knn", 5),
            float((probes.knn_predict(x[tr], y[tr], xh[te], 5) == y[te]).mean()),
        )

    ours = scores(tex)
    assert ours[0] >= 0.78, ours
    for other in (get_embedder("stats"), WhitenedStats(unlabelled_batches())):
        theirs = scores(other)
        assert ours[0] >= theirs[0] + 0.03 and ours[1] >= theirs[1] + 0.05, (ours, theirs)
    unfitted = scores(get_embedder("tex-unfitted"))
    assert ours[1] >= unfitted[1] + 0.05, (ours, unfitted)  # fitting pays in cross-validation
    assert ours[2] >= unfitted[2] + 0.3, (ours, unfitted)  # and with bands missing (imputation)


def test_knn_vote_equals_label_vote() -> None:
    """One kNN: eval's scikit-learn vote and earthvec label's vote agree."""
    from index.vote import vote

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8))
    yl = rng.integers(0, 4, 60)
    q = rng.normal(size=(25, 8))
    got = probes.knn_predict(x, yl, q, 5)
    xu = x / np.linalg.norm(x, axis=1, keepdims=True)
    qu = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = qu @ xu.T
    nn = np.argsort(-sims, axis=1)[:, :5]
    want, _ = vote(np.take_along_axis(sims, nn, 1), yl[nn], 4)
    np.testing.assert_array_equal(got, want)


def test_shipped_model_is_read_once_and_shared_read_only(tex) -> None:
    from embedder.tex.model import load_model
    from embedder.tex.plugin import piece

    a, b = load_model(), load_model()
    assert a.version == b.version == tex.version and a.config is not b.config
    key = next(iter(a.arrays))
    assert a.arrays[key] is b.arrays[key] and not a.arrays[key].flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a.arrays[key][...] = 0  # no embedder can spoil the shipped numbers for the others
    ablation = piece({"texture": 0.0}, "tex-signature")
    assert ablation.model.arrays[key] is a.arrays[key] and ablation.version != tex.version
    assert ablation.model.config["shares"]["texture"] == 0.0 != tex.model.config["shares"]["texture"]


def test_train_check_refuses_a_file_that_is_no_tex_model(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli.main import main
    from embedder.datapath import package_file

    mm = str(package_file("embedder", "weights", "earthvec-mm.pt"))
    assert main(["train", "--check", "--out", mm]) == 1  # before any fitting
    err = capsys.readouterr().err
    assert "is not a fitted earthvec-tex model" in err and "--model earthvec-mm" in err
