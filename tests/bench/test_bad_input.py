"""Hostile and broken input through the real CLI: one clear error line, exit code 1, nothing written.

Every case of :data:`bench.bad_cases.CASES` is made from real files of ``data/`` and run as
``python -m app.cli.main ...`` in a subprocess (two at a time, in one fixture); each test then
checks one case: exit code != 0, stderr exactly one ``earthvec CMD: error: ...`` line naming
the input (no traceback), and the database folder byte-for-byte unchanged (or not created).
Cases named ``*_works`` must succeed instead, with their own check (rows written, labels
intact, results inside an antimeridian box equal to the numpy oracle).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.bad_cases import CASES
from bench.bad_runner import Case, Ctx, Result, format_table, run_cases

AS_ROOT = os.name == "posix" and os.geteuid() == 0
FAST = [c for c in CASES if not c.slow]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    ctx = Ctx(tmp_path_factory.mktemp("bad_input"))
    runnable = [c for c in FAST if not (c.needs_non_root and AS_ROOT)]
    out = run_cases(runnable, ctx, jobs=2)
    print("\n" + format_table(out))
    return {r.case: r for r in out}


def test_enough_cases() -> None:
    errors = [c for c in CASES if c.check is None and not c.xfail]
    assert len(errors) >= 30 and len({c.name for c in CASES}) == len(CASES)
    assert {c.cmd for c in CASES} >= {"build", "label", "info", "similar", "sql", "eval"}


def _param(c: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else []
    return pytest.param(c, id=c.name, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in FAST])
def test_bad_input(case: Case, results: dict[str, Result]) -> None:
    if case.needs_non_root and AS_ROOT:
        pytest.skip("root reads any directory: permissions cannot make one unreadable")
    r = results[case.name]
    assert not r.traceback, r.message
    if case.check is not None:
        assert r.rc == 0 and r.passed, (r.why, r.message)
        return
    assert r.rc != 0 and r.one_line, (r.rc, r.message)
    assert r.message.startswith(f"earthvec {case.cmd}: error: ")
    assert case.words.lower() in r.message.lower(), r.message
    assert r.unchanged, "the database folder changed"
    assert r.passed, r.why


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c.slow], ids=[c.name for c in CASES if c.slow])
def test_slow_bad_input(case: Case, tmp_path: Path) -> None:
    (r,) = run_cases([case], Ctx(tmp_path), jobs=1)
    assert r.passed, (r.why, r.message)
