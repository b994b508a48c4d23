"""Real SIGKILLs of real ``earthvec`` processes: resumed builds equal clean ones row for row.

The default tests kill at named steps of a write (``EARTHVEC_KILL_AT``, see
:mod:`embedder.faults`); the slow test runs ``bench.chaos`` (random kill times, >= 20 per
operation, every operation), which ``make chaos`` also runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.chaos import main, run, tmp_files
from bench.chaos_ops import consistent, make_ops
from embedder import contract

CLASSES = ("Forest", "River")


def _killed_at(op, db: Path, point: str) -> bool:  # noqa: ANN001
    return not run(op.argv(db), env_extra={"EARTHVEC_KILL_AT": point})


def test_build_killed_at_every_step_resumes_to_the_clean_result(tmp_path: Path) -> None:
    op = make_ops(CLASSES)["build"]
    clean, db = tmp_path / "clean", tmp_path / "db"
    assert run(op.argv(clean))
    ref = op.state(clean)
    assert ref[0] is not None and ref[1].startswith("fresh:")
    initial = op.state(db)
    assert initial == (None, "missing")
    seen = []
    for point in ("shard-written:2", "tmp-written:5", "index-written", "published"):
        assert _killed_at(op, db, point), f"the build did not reach {point}"
        state = op.state(db)
        assert state in (initial, ref), f"after a kill at {point} a reader sees a mix"
        assert consistent(db)
        seen.append(state == ref)
    assert seen == [False, False, False, True]  # published only by the manifest
    assert tmp_files(db) > 0 or (db / contract.JOURNAL_DIR).glob("*.jsonl")
    assert run(op.argv(db))  # the resume
    assert op.state(db) == ref
    assert tmp_files(db) == 0 and not list((db / contract.JOURNAL_DIR).glob("*.jsonl"))
    build = json.loads((db / contract.BUILD_STATE).read_text())
    assert build["shards_written"] == 0 and build["shards_skipped"] == build["shards_total"]


def test_killed_overwrite_leaves_the_old_database_intact(tmp_path: Path) -> None:
    op = make_ops(CLASSES[:1])["overwrite"]
    base, clean = tmp_path / "base", tmp_path / "clean"
    op.prepare(base, tmp_path / "log")
    shutil.copytree(base, clean)
    initial = op.state(base)
    assert "stats@" in initial[1]
    assert run(op.argv(clean))
    ref = op.state(clean)
    assert "earthvec-tex@" in ref[1] and ref[0] != initial[0]
    assert _killed_at(op, base, "index-written")  # every shard of the new model is written
    assert op.state(base) == initial, "a killed overwrite changed the old database"
    assert consistent(base)
    assert run(op.argv(base))
    assert op.state(base) == ref and tmp_files(base) == 0
    m = contract.read_manifest(base)
    assert m is not None and {d.model for d in m.derived.values()} == {m.model}


@pytest.mark.slow
def test_chaos_table_random_kills(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """>= 20 random SIGKILLs per operation: nothing lost, doubled, changed or left behind."""
    rc = main(["--kills", "20", "--out", str(tmp_path), "--work", str(tmp_path / "work")])
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "chaos.json").read_text())
    assert rc == 0, out
    assert {r["operation"] for r in report["rows"]} == {"build", "global", "index", "label", "overwrite"}
    for r in report["rows"]:
        assert r["kills_injected"] >= 20 and r["resumes"] >= 20
        assert r["rows_lost"] == r["rows_duplicated"] == r["rows_differing"] == r["tmp_left"] == 0
        assert r["bad_states_after_kill"] == 0, r["problems"]
