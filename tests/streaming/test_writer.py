"""The writer against the real Postgres, without Spark: a task's transaction
(streaming/task.py) and the driver's batch record (streaming/writer.py). Idempotent by
construction, exact counts, in every order Spark may re-run things."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psycopg2
import pyarrow as pa
import pytest

from streaming.task import TaskResult, commit_rows
from streaming.writer import merge, record_batch
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


def commit(settings: Settings, table: pa.Table, batch_id: int) -> TaskResult:
    conn = psycopg2.connect(settings.database.url)
    try:
        return commit_rows(conn, table, batch_id)
    finally:
        conn.close()


def test_a_task_rerun_after_its_commit_writes_nothing(
    settings: Settings, db: Any, sample_csv: Path
) -> None:
    register(db, 11, 100)
    table = batch_of(sample_csv, 11)
    first, again = commit(settings, table, 0), commit(settings, table, 0)
    assert (first.rows_in, first.rows_new) == (100, 100)
    assert (again.rows_in, again.rows_new) == (100, 0)
    db.execute("SELECT count(*), count(DISTINCT (file_id, line_no)) FROM trip_data")
    assert db.fetchone() == (100, 100)
    db.execute("SELECT state, rows_committed FROM ingest_files WHERE file_id = 11")
    assert db.fetchone() == ("committed", 100)
    assert set(recount_differences(db).values()) == {0}


def test_two_attempts_of_one_task_at_once_write_once(
    settings: Settings, db: Any, sample_csv: Path
) -> None:
    """Speculation or a re-run racing its first attempt: the second waits on the first's
    uncommitted claims, then finds them taken."""
    register(db, 15, 100)
    table = batch_of(sample_csv, 15)

    def attempt(start: threading.Barrier, batch_id: int, results: list[TaskResult]) -> None:
        start.wait()
        results.append(commit(settings, table, batch_id))

    for batch_id in range(3):  # three races, each on fresh rows
        db.execute("TRUNCATE trip_data, ingested_chunks")
        db.execute("UPDATE ingest_files SET rows_committed = 0, state = 'published'")
        results: list[TaskResult] = []
        start = threading.Barrier(2)
        threads = [
            threading.Thread(target=attempt, args=(start, batch_id, results)) for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(r.rows_new for r in results) == [0, 100]
        db.execute("SELECT count(*), count(DISTINCT (file_id, line_no)) FROM trip_data")
        assert db.fetchone() == (100, 100)
    db.execute("SELECT rows_committed FROM ingest_files WHERE file_id = 15")
    assert db.fetchone() == (100,)


def test_a_replayed_batch_writes_nothing_and_is_recorded_once(
    settings: Settings, db: Any, sample_csv: Path
) -> None:
    register(db, 12, 100)
    table = batch_of(sample_csv, 12)
    halves = [table.slice(0, 40), table.slice(40)]  # two tasks, their own chunks each
    url = settings.database.url
    first = merge([commit(settings, t, 7) for t in halves])
    first.decode_ms = 5  # set by write_task, around commit_rows
    assert record_batch(url, "ckpt-a", 7, first, 10) is True
    replay = merge([commit(settings, t, 7) for t in halves])
    assert (replay.rows_in, replay.rows_new) == (100, 0)
    assert record_batch(url, "ckpt-a", 7, replay, 10) is False  # a replay
    db.execute("SELECT rows_in, rows_new, offsets FROM stream_batches")
    assert db.fetchall() == [(100, 100, {"start": {"0": 0}, "end": {"0": 3}})]
    db.execute("SELECT decode_ms, copy_ms, counts_ms FROM stream_batches")
    assert db.fetchall() == [(5, first.copy_ms, first.counts_ms)]  # the first record's
    assert set(recount_differences(db).values()) == {0}


def test_republished_and_duplicate_chunks_are_skipped(
    settings: Settings, db: Any, sample_csv: Path
) -> None:
    register(db, 13, 100)
    commit(settings, batch_of(sample_csv, 13), 0)
    # the same chunks again at other offsets (a re-published file), twice within one task
    again = pa.concat_tables([batch_of(sample_csv, 13, 1, 100), batch_of(sample_csv, 13, 1, 200)])
    assert commit(settings, again, 1).rows_new == 0
    db.execute("SELECT count(*) FROM trip_data")
    assert db.fetchone() == (100,)
    db.execute(
        "SELECT trips FROM region_datasource_counts WHERE region = 'Prague' "
        "AND datasource = 'cheap_mobile'"
    )
    assert db.fetchone() == (13,)
    register(db, 16, 100)
    doubled = pa.concat_tables([batch_of(sample_csv, 16, 0, 0), batch_of(sample_csv, 16, 0, 10)])
    assert commit(settings, doubled, 2).rows_new == 100
    assert set(recount_differences(db).values()) == {0}


def test_a_failed_task_leaves_nothing_behind(settings: Settings, db: Any, sample_csv: Path) -> None:
    register(db, 14, 100)
    table = batch_of(sample_csv, 14)
    broken = table.set_column(
        table.schema.get_field_index("region"), "region", pa.nulls(table.num_rows, pa.string())
    )
    with pytest.raises(Exception, match="null value"):
        commit(settings, broken, 4321)
    for name in ("trip_data", "ingested_chunks", "stream_batches", "region_hour_counts"):
        db.execute(f"SELECT count(*) FROM {name}")  # noqa: S608 - fixed table names
        assert db.fetchone() == (0,), name
    # Only the (empty) partition stays: it is created and committed before the task's
    # transaction, so that the lock its creation takes is not held for the whole task.
    db.execute("SELECT to_regclass('public.trip_data_b4300') IS NOT NULL")
    assert db.fetchone() == (True,)
    assert commit(settings, table, 4321).rows_new == 100


def test_batches_land_in_partitions_of_fifty_batch_ids(
    settings: Settings, db: Any, sample_csv: Path
) -> None:
    register(db, 21, 100)
    register(db, 22, 100)
    commit(settings, batch_of(sample_csv, 21), 49)
    commit(settings, batch_of(sample_csv, 22), 50)
    db.execute(
        "SELECT tableoid::regclass::text, min(batch_id), count(*) FROM trip_data"
        " GROUP BY 1 ORDER BY 2"
    )
    assert db.fetchall() == [("trip_data_b0", 49, 100), ("trip_data_b50", 50, 100)]
    db.execute("SELECT public.trip_data_partition_for(-1)")  # a negative id has its range too
    assert db.fetchone() == ("trip_data_bm50",)
    assert set(recount_differences(db).values()) == {0}


def trips_in_fine_cells(path: Path, cells: list[tuple[int, int, int]]) -> Path:
    """A file with `n` trips in each 0.001-degree cell (fx, fy, n), all on one Monday."""
    lines = ["region,origin_coord,destination_coord,datetime,datasource"]
    for fx, fy, n in cells:
        point = f"POINT ({fx / 1000 + 0.0005:.4f} {fy / 1000 + 0.0005:.4f})"
        lines += [f"Prague,{point},{point},2018-05-28 09:00:00,funny_car"] * n
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fine_cells_add_up_as_pairs_and_as_whole_arrays(
    settings: Settings, db: Any, tmp_path: Path
) -> None:
    """area_week_cells gets a batch's fine trips as pairs (up to eight fine cells a row) or
    as a whole array (more), into new and into existing rows: each sums to the recount."""
    a = [(14400 + s // 10, 50000 + s % 10, 1 + s % 3) for s in range(9)]  # 9 fine cells
    b = [(14410 + s, 50010, 2) for s in range(3)]  # 3
    first = trips_in_fine_cells(tmp_path / "first.csv", a + b)
    c = [(14400, 50000, 4), (14409, 50009, 1)]  # 2 more into a's row: pairs
    d = [(14410 + s // 10, 50010 + s % 10, 1) for s in range(0, 100, 9)]  # 12 into b's: array
    e = [(14420 + s, 50020, 1) for s in range(8)]  # a new row of exactly 8: pairs
    second = trips_in_fine_cells(tmp_path / "second.csv", c + d + e)
    for file_id, path in ((31, first), (32, second)):
        rows = len(path.read_text().splitlines()) - 1
        register(db, file_id, rows)
        assert commit(settings, batch_of(path, file_id), file_id).rows_new == rows
    db.execute("SELECT cx, cy, trips, fine[1], fine[100] FROM area_week_cells ORDER BY 1, 2")
    assert db.fetchall() == [(1440, 5000, 23, 5, 1), (1441, 5001, 18, 3, 1), (1442, 5002, 8, 1, 0)]
    assert set(recount_differences(db).values()) == {0}


def test_merge_takes_the_widest_offsets_and_the_oldest_record() -> None:
    a = TaskResult(rows_in=3, rows_new=2, start={"0": 5}, end={"0": 9}, oldest_ms=200)
    b = TaskResult(rows_in=4, rows_new=4, start={"0": 9, "1": 2}, end={"0": 12, "1": 3})
    total = merge([a, b])
    assert (total.rows_in, total.rows_new) == (7, 6)
    assert (total.start, total.end) == ({"0": 5, "1": 2}, {"0": 12, "1": 3})
    assert total.oldest_ms == 200
