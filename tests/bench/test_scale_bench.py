"""Smoke runs of the out-of-core and PQ-diagnosis benchmarks on small sets (marked ``bench``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.bench
def test_scale_bench_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.scale_bench import main

    out = tmp_path / "scale.json"
    args = ["--n", "300000", "--queries", "100", "--codes", "rabitq4,pq4", "--shard-rows", "100000"]
    args += [
        "--block",
        "50000",
        "--data",
        str(REPO / "data" / "eurosat_ms"),
        "--folder",
        str(tmp_path / "ix"),
    ]
    assert main([*args, "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["complete"] and res["data"]["dim"] == 64 and res["ground_truth_s"] > 0
    for row in res["rows"]:
        assert row["shards"] == 3 and row["recall"] > 0.8 and row["qps_single"] > 0  # 50 queries: noisy
        assert row["bytes_per_vector"]["vectors"] == 256.0  # float32 copies for exact re-ranking
    assert not list((tmp_path / "ix").glob("*/*"))  # index folders removed without --keep
    assert "QPS batch" in capsys.readouterr().out


@pytest.mark.bench
def test_pq_diagnosis_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.pq_diagnosis import main

    out = tmp_path / "pq.json"
    assert (
        main(
            [
                "--n",
                "30000",
                "--queries",
                "100",
                "--data",
                str(REPO / "data" / "eurosat_ms"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    rows = {(r["kind"], r["metric"]): r for r in res["candidate_recall"]}
    assert (
        not res["factory_defaults"]["PQ64x4fs_by_residual"] and res["factory_defaults"]["RFlat_k_factor"] == 1
    )
    # the fix: residual codes scored by L2 find more of the true top-10 than raw codes by IP
    assert rows[("pq4fsr", "l2")]["k_factor_16"] > rows[("pq4fs", "ip")]["k_factor_16"]
    for e in res["estimator"]:  # same codes: the L2 estimate errs less than the IP one
        assert e["error_std_l2"] < e["error_std_ip"]
    assert "the failing string" in capsys.readouterr().out


def test_a_resumed_build_is_checked_against_the_generated_set(tmp_path: Path) -> None:
    """``stored_rows_match`` accepts an index of the set and refuses one whose shard holds other rows."""
    import functools

    from bench.data import TiledSet, load_real_vectors
    from bench.scale_bench import shard_blocks, stored_rows_match
    from index.ondisk import build_ondisk
    from index.ondisk_plan import plan_ondisk

    real = load_real_vectors(REPO / "data" / "eurosat_ms", chip_step=6, dim=64)
    ts = TiledSet(real, n=40_000, n_queries=50, block=5_000)
    plan = plan_ondisk(ts.n, 64, nlist=64)
    sample = ts.vectors(0, 5_000)
    good = [functools.partial(shard_blocks, ts, b, b + 2) for b in (0, 2, 4, 6)]
    od = build_ondisk(tmp_path / "good", good, sample, n=ts.n, plan=plan)
    assert stored_rows_match(od, ts, shard_rows=10_000)
    swapped = [good[0], good[2], good[1], good[3]]  # shard 1 holds shard 2's rows
    od = build_ondisk(tmp_path / "swapped", swapped, sample, n=ts.n, plan=plan)
    assert not stored_rows_match(od, ts, shard_rows=10_000)


def test_sweep_measures_a_kept_index_like_its_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--sweep`` on a ``--keep`` index gives the build's recall at the build's tuned setting."""
    from bench.scale_bench import main

    common = ["--n", "60000", "--queries", "100", "--shard-rows", "20000", "--block", "10000"]
    common += ["--data", str(REPO / "data" / "eurosat_ms"), "--folder", str(tmp_path / "ix")]
    assert main([*common, "--keep", "--out", str(tmp_path / "a.json")]) == 0
    built = json.loads((tmp_path / "a.json").read_text())["rows"][0]
    assert built["stored_rows_match"]
    setting = f"{built['nprobe']}:{built['k_factor']}"
    assert main([*common, "--sweep", f"{setting},64:8", "--out", str(tmp_path / "b.json")]) == 0
    first, wide = json.loads((tmp_path / "b.json").read_text())["sweep"]
    assert (first["nprobe"], first["k_factor"], first["recall"]) == (
        built["nprobe"],
        built["k_factor"],
        built["recall"],
    )
    assert wide["recall"] >= first["recall"] and wide["qps_batch"] > 0 and wide["qps_single"] > 0
    assert "held-out half of 100 queries" in capsys.readouterr().out
