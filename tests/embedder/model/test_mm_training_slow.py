"""The real training run (slow): `earthvec train --check` reproduces the shipped checkpoint."""

from __future__ import annotations

import pytest

from app.cli.main import main


@pytest.mark.slow
def test_train_cli_reproduces_shipped_checkpoint(capsys) -> None:
    from embedder.model.checkpoint import candidate_paths, load_checkpoint

    shipped = next((p for p in candidate_paths() if p.is_file()), None)
    if shipped is None:
        pytest.skip("no shipped checkpoint to reproduce")
    ckpt = load_checkpoint(shipped)
    steps = str(ckpt.train_config["steps"])
    threads = str(ckpt.info.get("threads", 2))
    rc = main(
        ["train", "--model", "earthvec-mm", "--out", str(shipped), "--check", "--steps", steps,
         "--threads", threads, "--device", "cpu"]  # fmt: skip
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "reproduced" in out and ckpt.version in out


@pytest.mark.slow
def test_eval_cli_writes_table_and_json(tmp_path, capsys) -> None:
    import json

    out = tmp_path / "eval.json"
    rc = main(["eval", "--models", "stats,earthvec-mm", "--draws", "3", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "stats" in text and "earthvec-mm" in text
    report = json.loads(out.read_text())
    names = [r["name"] for r in report["results"]]
    assert names == ["stats", "earthvec-mm"]
    for r in report["results"]:
        assert 0.0 < r["knn"]["k5"] <= 1.0 and set(r["few_shot_logreg"]) == {"1", "5", "10", "20"}
