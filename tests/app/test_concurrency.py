"""Several processes on one database: two writers, a writer and four readers, two explorers' readers.

The scenarios live in :mod:`bench.concurrency` (the concurrency table of ``make chaos``); these
tests run them and check every field of their rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.concurrency import passed, readers_during_builds, render, two_explorers, two_writers


def test_two_builds_on_one_database(tmp_path: Path) -> None:
    row = two_writers(tmp_path)
    assert row["exit_codes"] == [0, 1, 0], row["stderr"]
    assert row["refused_names_the_writer"]  # "is being written by pid N" and "--no-wait"
    assert row["second_waited"]  # "waiting for the writer of DB"
    assert row["sources"] == sorted({"Forest", "River", "Pasture", "SeaLake", "Highway"})
    assert row["rows"] == row["rows_expected"] == 40 + 35 + 30 + 40 + 34 and row["duplicates"] == 0
    assert row["generations"] == 2  # one per build (0: the empty start)
    assert not row["lock_left"]
    assert passed(row)


def _check_readers(row: dict) -> None:  # type: ignore[type-arg]
    assert all(rc == 0 for rc in row["build_exit_codes"])
    assert row["reader_failures"] == 0, row["stderr"]
    assert row["reader_calls"] > 2 * row["generations_published"]
    assert row["read_before_and_after"]  # readers saw the first and the last generation
    assert row["partial_generations_seen"] == 0 and row["duplicates_seen"] == 0  # whole, no duplicate
    assert row["similar_short_answers"] == 0
    assert passed(row)


def test_readers_see_whole_generations_while_a_build_runs(tmp_path: Path) -> None:
    row = readers_during_builds(tmp_path, ["sql", "similar"], [("River",)])
    assert row["generations_published"] == 2
    _check_readers(row)


@pytest.mark.slow
def test_four_readers_while_two_builds_run(tmp_path: Path) -> None:
    row = readers_during_builds(
        tmp_path, ["sql", "similar", "sql", "similar"], [("River",), ("Highway", "SeaLake")]
    )
    assert row["generations_published"] == 3
    _check_readers(row)


def test_two_explorers_open_one_database(tmp_path: Path, eurosat_db: Path) -> None:
    """Both race to build the missing index: one stores it under the lock, neither fails."""
    row = two_explorers(tmp_path, eurosat_db)
    assert row["exit_codes"] == [0, 0], row["stderr"]
    assert row["rows_each_saw"] == ["369", "369"] and row["rows_expected"] == "369"
    assert row["index_state"] == "fresh"
    assert row["tmp_left"] == 0
    assert passed(row)
    assert "two explorers open one database" in render([row]) and " ok" in render([row])


def test_a_failed_scenario_is_not_passed() -> None:
    row = {
        "scenario": "two explorers open one database",
        "exit_codes": [0, 0],
        "rows_each_saw": ["369", "368"],
        "rows_expected": "369",
        "index_state": "fresh",
        "tmp_left": 0,
        "processes": 2,
        "passed": False,
    }
    assert not passed(row)
    assert "FAIL" in render([row])
