"""The streaming job on the real two-worker cluster, end to end, exactly once."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from streaming.task import KILL_DRIVER_AFTER_COMMIT_ENV, KILL_TASK_AFTER_COMMIT_ENV
from streaming.writer import CRASH_AFTER_COMMIT_ENV
from tests.conftest import committed_rows, recount_differences, wait_for
from tripstream.generate import generate_files
from tripstream.settings import Settings

pytestmark = pytest.mark.integration


def test_sample_file_lands_once_with_exact_counts(
    cluster_settings: Settings, db: Any, sample_csv: Path, producer_thread: Any, streaming_job: Any
) -> None:
    job = streaming_job()
    producer_thread(cluster_settings)
    job.wait_started()
    dropped = time.monotonic()
    shutil.copy(sample_csv, cluster_settings.paths.inbox / "trips.csv")
    wait_for(lambda: committed_rows(db) == 100, 60, "100 rows committed")
    latency = time.monotonic() - dropped
    wait_for(lambda: (cluster_settings.paths.done / "trips.csv").exists(), 30, "file in done/")
    db.execute("SELECT state, rows_valid, rows_committed FROM ingest_files")
    assert db.fetchall() == [("committed", 100, 100)]
    assert set(recount_differences(db).values()) == {0}
    db.execute("SELECT count(DISTINCT datasource), count(DISTINCT region) FROM trip_data")
    assert db.fetchone() == (5, 3)
    print(f"sample file visible in counts {latency:.2f}s after the drop")

    # dropping the same content again, under another name, adds nothing
    shutil.copy(sample_csv, cluster_settings.paths.inbox / "trips again.csv")
    wait_for(
        lambda: (cluster_settings.paths.done / "trips again.csv").exists(),
        30,
        "duplicate moved to done/",
    )
    db.execute("SELECT drops FROM ingest_files")
    assert db.fetchone() == (2,)
    assert committed_rows(db) == 100


def test_crash_between_postgres_commit_and_spark_commit(
    cluster_settings: Settings, db: Any, sample_csv: Path, producer_thread: Any, streaming_job: Any
) -> None:
    producer_thread(cluster_settings)
    shutil.copy(sample_csv, cluster_settings.paths.inbox / "trips.csv")
    wait_for(lambda: (cluster_settings.paths.done / "trips.csv").exists(), 60, "published")
    crashed = streaming_job(**{CRASH_AFTER_COMMIT_ENV: "0"})
    assert crashed.wait_exit(timeout=180) != 0
    assert "fault injection" in crashed.text()
    assert committed_rows(db) == 100  # Postgres committed batch 0 ...
    # The 100-row file took the express lane, so its query's checkpoint has batch 0.
    express = Path(cluster_settings.streaming.checkpoint_dir) / "express"
    assert (express / "offsets" / "0").exists()
    assert not (express / "commits" / "0").exists()  # ... but Spark never committed it
    resumed = streaming_job()
    wait_for(lambda: "replay: already committed" in resumed.text(), 120, "batch 0 replayed")
    assert committed_rows(db) == 100
    db.execute("SELECT count(*) FROM stream_batches")
    assert db.fetchone() == (1,)
    assert set(recount_differences(db).values()) == {0}


def test_a_small_file_overtakes_a_bulk_load_in_its_own_query(
    cluster_settings: Settings,
    db: Any,
    sample_csv: Path,
    tmp_path: Path,
    producer_thread: Any,
    streaming_job: Any,
) -> None:
    (bulk,) = generate_files(tmp_path / "gen", rows=500_000, files=1, seed=21, bad_share=0.0)
    producer_thread(cluster_settings)
    job = streaming_job()
    job.wait_started()
    bulk.rename(cluster_settings.paths.inbox / bulk.name)
    wait_for(lambda: committed_rows(db) > 0, 120, "the bulk load to flow")
    shutil.copy(sample_csv, cluster_settings.paths.inbox / "trips.csv")
    wait_for(lambda: file_state(db, "trips.csv") == "committed", 60, "the small file")
    # It did not queue behind the bulk file: the bulk load was still going ...
    assert file_state(db, bulk.name) != "committed"
    wait_for(lambda: file_state(db, bulk.name) == "committed", 240, "the bulk file")

    # ... because each lane has its own query, checkpoint and transactions. (The driver
    # records a batch after its tasks committed the rows: wait for the last record.)
    def per_lane() -> list[tuple[str, int]]:
        db.execute(
            "SELECT regexp_replace(checkpoint, '.*/', ''), sum(rows_new) FROM stream_batches"
            " GROUP BY 1 ORDER BY 1"
        )
        return [(lane, int(rows)) for lane, rows in db.fetchall()]

    wait_for(lambda: per_lane() == [("bulk", 500_000), ("express", 100)], 60, "the records")
    assert set(recount_differences(db).values()) == {0}


def file_state(db: Any, name: str) -> str | None:
    db.execute("SELECT state FROM ingest_files WHERE name = %s", (name,))
    row = db.fetchone()
    return row[0] if row else None


def bulk_file(tmp_path: Path, settings: Settings, rows: int, seed: int) -> Path:
    """One bulk file, renamed into the inbox: its chunks fill both tasks of a batch."""
    (path,) = generate_files(tmp_path / f"gen-{seed}", rows=rows, files=1, seed=seed, bad_share=0.0)
    return path.rename(settings.paths.inbox / path.name)


def executor_backends(db: Any) -> set[int]:
    db.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'tripstream-executor-%'"
    )
    return {int(pid) for (pid,) in db.fetchall()}


def test_a_task_killed_right_after_its_commit_is_rerun_without_writing_twice(
    cluster_settings: Settings, db: Any, tmp_path: Path, producer_thread: Any, streaming_job: Any
) -> None:
    """The executor-side fault: the task's Python worker dies after its transaction
    committed, Spark re-runs the task, and the re-run finds its chunks claimed."""
    producer_thread(cluster_settings)
    job = streaming_job(**{KILL_TASK_AFTER_COMMIT_ENV: "0"})
    path = bulk_file(tmp_path, cluster_settings, 60_000, seed=31)
    wait_for(lambda: file_state(db, path.name) == "committed", 180, "the file committed")
    # the fault did happen (the driver may log the lost task after the file's last commit)
    wait_for(lambda: "Python worker exited unexpectedly" in job.text(), 60, "the lost task")
    wait_for(lambda: "batch 0:" in job.text(), 120, "batch 0 recorded after the re-run")
    assert committed_rows(db) == 60_000
    db.execute("SELECT count(DISTINCT (file_id, line_no)) FROM trip_data")
    assert db.fetchone() == (60_000,)
    assert set(recount_differences(db).values()) == {0}


def test_the_driver_killed_between_two_tasks_commits(
    cluster_settings: Settings, db: Any, tmp_path: Path, producer_thread: Any, streaming_job: Any
) -> None:
    """Batch 0's first task commits and kills the driver; its other task had not committed.
    The restarted job replays batch 0: the committed task's chunks are skipped, the rest
    land, and the batch is recorded once. (The other task's Python worker may also wake
    after the driver died and commit its own rows: an orphaned commit, which the replay
    then finds claimed.)"""
    producer_thread(cluster_settings)
    path = bulk_file(tmp_path, cluster_settings, 60_000, seed=32)
    # all 12 chunks on the topic before the job starts: batch 0 takes them, in two tasks
    # (a bulk batch is one task by default; minPartitions 2 splits it)
    wait_for(lambda: file_state(db, path.name) == "published", 120, "the file published")
    two_tasks = {"TRIPSTREAM_STREAMING_MIN_PARTITIONS": "2"}
    killed = streaming_job(**{KILL_DRIVER_AFTER_COMMIT_ENV: "0"}, **two_tasks)
    assert killed.wait_exit(timeout=180) != 0
    partial = committed_rows(db)
    assert 0 < partial < 60_000  # one task's rows, not the other's
    db.execute("SELECT count(*) FROM stream_batches")
    assert db.fetchone() == (0,)  # the batch was never recorded
    assert set(recount_differences(db).values()) == {0}  # exact at this committed point
    streaming_job(**two_tasks)
    wait_for(lambda: file_state(db, path.name) == "committed", 180, "the file committed")
    assert committed_rows(db) == 60_000
    db.execute("SELECT count(DISTINCT (file_id, line_no)) FROM trip_data")
    assert db.fetchone() == (60_000,)

    # the driver records the replayed batch (once: its key) after its tasks' commits
    def bulk_batch_0_records() -> int:
        db.execute(
            "SELECT count(*) FROM stream_batches WHERE batch_id = 0 AND checkpoint LIKE '%bulk'"
        )
        return int(db.fetchone()[0])

    wait_for(lambda: bulk_batch_0_records() == 1, 60, "batch 0 recorded")
    assert set(recount_differences(db).values()) == {0}


def test_executors_keep_one_named_connection_per_python_worker_and_close_it(
    cluster_settings: Settings, db: Any, tmp_path: Path, producer_thread: Any, streaming_job: Any
) -> None:
    producer_thread(cluster_settings)
    job = streaming_job()
    first = bulk_file(tmp_path, cluster_settings, 60_000, seed=33)
    wait_for(lambda: file_state(db, first.name) == "committed", 180, "the first file")
    before = executor_backends(db)
    # one per Python worker: at most one per task slot (2 workers x 2 slots)
    assert 1 <= len(before) <= 4
    second = bulk_file(tmp_path, cluster_settings, 60_000, seed=34)
    wait_for(lambda: file_state(db, second.name) == "committed", 180, "the second file")
    assert executor_backends(db) == before  # reused across batches: no connect per task
    job.stop()
    wait_for(lambda: not executor_backends(db), 60, "the executors' connections closed")
