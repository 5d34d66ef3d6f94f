"""The foreachBatch writer against the real Postgres: idempotent, exact counts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from streaming.writer import BatchWriter
from tests.conftest import arrow_batch_of, recount_differences
from tripstream.settings import Settings

pytestmark = pytest.mark.integration


def batch_of(path: Path, file_id: int, partition: int = 0, first_offset: int = 0) -> pa.Table:
    return arrow_batch_of(path, file_id, partition, first_offset, chunk_rows=40)


def register(db: Any, file_id: int, rows: int) -> None:
    db.execute(
        "INSERT INTO ingest_files (file_id, sha256, name, size_bytes, state, rows_valid)"
        " VALUES (%s, 'x', 'trips.csv', 1, 'published', %s)",
        (file_id, rows),
    )


def test_same_batch_twice_lands_once(settings: Settings, db: Any, sample_csv: Path) -> None:
    register(db, 11, 100)
    writer = BatchWriter(settings.database.url, "ckpt-a")
    table = batch_of(sample_csv, 11)
    first = writer.write(table, 0, time.monotonic())
    second = writer.write(table, 0, time.monotonic())
    assert (first["rows_new"], first["replay"]) == (100, False)
    assert second["replay"] is True
    db.execute("SELECT count(*), count(DISTINCT (file_id, line_no)) FROM trip_data")
    assert db.fetchone() == (100, 100)
    db.execute("SELECT state, rows_committed FROM ingest_files WHERE file_id = 11")
    assert db.fetchone() == ("committed", 100)
    assert set(recount_differences(db).values()) == {0}


def test_republished_chunks_under_a_new_batch_id_are_skipped(
    settings: Settings, db: Any, sample_csv: Path
) -> None:
    register(db, 12, 100)
    writer = BatchWriter(settings.database.url, "ckpt-b")
    writer.write(batch_of(sample_csv, 12), 0, time.monotonic())
    # the same chunks again at other offsets (a re-published file), twice within one batch
    again = pa.concat_tables([batch_of(sample_csv, 12, 1, 100), batch_of(sample_csv, 12, 1, 200)])
    result = writer.write(again, 1, time.monotonic())
    assert result["rows_new"] == 0
    db.execute("SELECT count(*) FROM trip_data")
    assert db.fetchone() == (100,)
    db.execute(
        "SELECT trips FROM region_datasource_counts WHERE region = 'Prague' "
        "AND datasource = 'cheap_mobile'"
    )
    assert db.fetchone() == (13,)


def test_duplicate_chunk_inside_one_batch_counts_once(
    settings: Settings, db: Any, sample_csv: Path
) -> None:
    register(db, 13, 100)
    writer = BatchWriter(settings.database.url, "ckpt-c")
    doubled = pa.concat_tables([batch_of(sample_csv, 13, 0, 0), batch_of(sample_csv, 13, 0, 10)])
    assert writer.write(doubled, 0, time.monotonic())["rows_new"] == 100
    assert set(recount_differences(db).values()) == {0}


def test_failed_batch_leaves_nothing_behind(settings: Settings, db: Any, sample_csv: Path) -> None:
    register(db, 14, 100)
    writer = BatchWriter(settings.database.url, "ckpt-d")
    table = batch_of(sample_csv, 14)
    broken = table.set_column(
        table.schema.get_field_index("region"), "region", pa.nulls(table.num_rows, pa.string())
    )
    with pytest.raises(Exception, match="null value"):
        writer.write(broken, 4321, time.monotonic())
    for name in ("trip_data", "ingested_chunks", "stream_batches", "region_hour_counts"):
        db.execute(f"SELECT count(*) FROM {name}")  # noqa: S608 - fixed table names
        assert db.fetchone() == (0,), name
    # Only the (empty) partition stays: it is created and committed before the batch's
    # transaction, so that the lock its creation takes is not held for the whole batch.
    db.execute("SELECT to_regclass('public.trip_data_b4300') IS NOT NULL")
    assert db.fetchone() == (True,)
    assert writer.write(table, 4321, time.monotonic())["rows_new"] == 100


def test_batches_land_in_partitions_of_fifty_batch_ids(
    settings: Settings, db: Any, sample_csv: Path
) -> None:
    register(db, 21, 100)
    register(db, 22, 100)
    writer = BatchWriter(settings.database.url, "ckpt-parts")
    writer.write(batch_of(sample_csv, 21), 49, time.monotonic())
    writer.write(batch_of(sample_csv, 22), 50, time.monotonic())
    writer.close()
    db.execute(
        "SELECT tableoid::regclass::text, min(batch_id), count(*) FROM trip_data"
        " GROUP BY 1 ORDER BY 2"
    )
    assert db.fetchall() == [("trip_data_b0", 49, 100), ("trip_data_b50", 50, 100)]
    db.execute("SELECT public.trip_data_partition_for(-1)")  # a negative id has its range too
    assert db.fetchone() == ("trip_data_bm50",)
    assert set(recount_differences(db).values()) == {0}
