"""Transactions, manifest, journal, upsert, adoption and sweeping on real EuroSAT rows."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedder import contract
from embedder.contract.writer import JournalHeader, journal_line, parse_journal
from embedder.errors import ModelMismatchError, SchemaError
from embedder.storage import Transaction, upsert
from embedder.storage.shardfile import row_keys

UTC = timezone.utc


def _write(db: Path, parts: dict[str, pa.Table], meta: contract.DatasetMeta, keys: str = "k", **kw) -> None:
    with Transaction(db, "test", **kw) as tx:
        tx.check_meta(meta)
        for p, t in parts.items():
            tx.write_shard(p, f"{keys}-{p}", t)
        tx.commit()


def _rows(db: Path) -> pa.Table:
    return contract.read_table(db).sort_by([(contract.H3, "ascending")])


def test_generation_is_published_by_the_manifest_only(tmp_path, parts, meta) -> None:
    db = tmp_path / "db"
    first = dict(list(parts.items())[:3])
    _write(db, first, meta)
    m = contract.read_manifest(db)
    assert m.generation == 1 and m.rows == sum(t.num_rows for t in first.values())
    assert contract.read_manifest(db).to_json() == m.to_json()  # round trip
    with Transaction(db, "abandoned") as tx:
        tx.check_meta(meta)
        p, t = next(iter(parts.items()))
        tx.write_shard(p, "other", t.slice(0, 2))
        # not committed: readers still see generation 1, and a new file lies beside it
    assert contract.read_manifest(db).generation == 1 and _rows(db).num_rows == m.rows
    assert len(contract.embedding_files(db)) == 3
    contract.manifest_path(db).write_text("{not json")
    with pytest.raises(SchemaError, match="not a valid earthvec manifest"):
        contract.embedding_files(db)


def test_upsert_replaces_same_cell_and_time_keeps_the_rest(parts) -> None:
    base = next(iter(parts.values()))
    n = base.num_rows
    new = base.slice(0, 3)
    h3 = new.column(contract.H3).to_numpy()
    merged = upsert([base], new)
    assert merged.num_rows == n  # replaced, not doubled
    dated = new.set_column(
        new.schema.get_field_index(contract.DATETIME),
        contract.DATETIME,
        pa.array([datetime(2024, 5, 1, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC")),
    )
    merged = upsert([base], dated, delete=[(int(h3[0]), None)])
    keys = set(zip(*row_keys(merged), strict=True))
    assert merged.num_rows == n - 1 + 3  # another time is another row; a deleted key is gone
    assert len(keys) == merged.num_rows and (int(h3[0]), np.iinfo(np.int64).min) not in keys
    with pytest.raises(SchemaError, match="twice"):
        upsert([base], pa.concat_tables([new, new]))


def test_rows_outside_the_partition_are_refused(tmp_path, parts, meta) -> None:
    (p1, t1), (p2, _) = list(parts.items())[:2]
    with Transaction(tmp_path / "db", "x") as tx:
        tx.check_meta(meta)
        with pytest.raises(SchemaError, match=f"not inside partition {p2}"):
            tx.write_shard(p2, "k", t1)
        tx.write_shard(p1, "k", t1)


def test_truncated_shard_is_not_reused_on_resume(tmp_path, parts, meta) -> None:
    db = tmp_path / "db"
    two = dict(list(parts.items())[:2])
    with Transaction(db, "first try") as tx:
        tx.check_meta(meta)
        recs = [tx.write_shard(p, f"k-{p}", t) for p, t in two.items()]
    bad = db / recs[0].file.path
    bad.write_bytes(bad.read_bytes()[:-100])  # a torn write after a power loss
    with Transaction(db, "resume") as tx:
        tx.check_meta(meta)
        got = {p: tx.has_shard(p, f"k-{p}") for p in two}
        assert got == {recs[0].partition: False, recs[1].partition: True}
        assert tx.reused == 1
        tx.write_shard(recs[0].partition, f"k-{recs[0].partition}", two[recs[0].partition])
        tx.commit()
    assert _rows(db).num_rows == sum(t.num_rows for t in two.values())
    assert not list(contract.journal_dir(db).glob("*.jsonl"))


def test_journal_ignores_a_torn_last_line(tmp_path, parts, meta) -> None:
    header = JournalHeader("tx1", 3, False, "earthvec build")
    rec = contract.ShardRecord("811e3ffffffffff", "key", "embeddings/x.parquet", None)
    raw = journal_line(header) + journal_line(rec) + journal_line(rec)[:-9]
    got_header, shards = parse_journal(raw)
    assert got_header == header and shards == [rec]


def test_other_model_is_refused_unless_replace(tmp_path, parts, meta) -> None:
    db = tmp_path / "db"
    _write(db, dict(list(parts.items())[:2]), meta)
    other = contract.DatasetMeta(**{**meta.__dict__, "model_version": "feedfacecafe"})
    with Transaction(db, "x") as tx, pytest.raises(ModelMismatchError, match="feedfacecafe.*--overwrite"):
        tx.check_meta(other)
    p, t = next(iter(parts.items()))
    t2 = t.replace_schema_metadata(other.to_metadata())
    with Transaction(db, "x", replace=True) as tx:
        tx.check_meta(other)
        tx.write_shard(p, "new", t2)
        m = tx.commit()
    assert m.model == other.model and m.rows == t.num_rows and list(m.partitions) == [p]


def test_previous_generation_files_stay_until_the_next_commit(tmp_path, parts, meta) -> None:
    db = tmp_path / "db"
    p, t = next(iter(parts.items()))
    _write(db, {p: t}, meta, keys="a")
    gen1 = contract.load_snapshot(db)
    _write(db, {p: t.slice(0, 3)}, meta, keys="b")  # replaces gen 1's file of p
    assert all(f.exists() for f in gen1.files)  # a reader of generation 1 can still finish
    with contract.pinned(db, gen1):
        assert contract.read_table(db).num_rows == t.num_rows
    _write(db, {p: t.slice(0, 2)}, meta, keys="c")
    assert not any(f.exists() for f in gen1.files)
    assert len(list(contract.embeddings_dir(db).rglob("*.parquet"))) == 2  # gen 3 + retired gen 2


def test_folder_without_manifest_is_adopted_after_checking_its_files(tmp_path, eurosat_db) -> None:
    legacy = tmp_path / "legacy"
    shutil.copytree(eurosat_db / contract.EMBEDDINGS_DIR, legacy / contract.EMBEDDINGS_DIR)
    files = contract.embedding_files(legacy)  # readers list the folder
    broken = tmp_path / "broken"
    shutil.copytree(legacy, broken)
    victim = contract.embedding_files(broken)[0]
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(SchemaError, match=victim.name), Transaction(broken, "x"):
        pass
    assert contract.read_manifest(broken) is None
    with Transaction(legacy, "adopt") as tx:
        assert tx.base is not None and tx.base.generation == 1
    m = contract.read_manifest(legacy)
    assert [legacy / f.path for f in m.files()] == files
    assert m.rows == 369 and all(f.rows == pq.read_metadata(legacy / f.path).num_rows for f in m.files())


def test_overwrite_replaces_a_broken_folder(tmp_path, eurosat_db, parts, meta) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(eurosat_db / contract.EMBEDDINGS_DIR, broken / contract.EMBEDDINGS_DIR)
    victim = contract.embedding_files(broken)[0]
    victim.write_bytes(victim.read_bytes()[:200])
    p, t = next(iter(parts.items()))
    _write(broken, {p: t}, meta, replace=True)
    assert _rows(broken).num_rows == t.num_rows and not victim.exists()
