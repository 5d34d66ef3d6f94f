"""The streaming job on the real two-worker cluster, end to end, exactly once."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

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
    # ... because each lane has its own query, checkpoint and transactions.
    db.execute(
        "SELECT regexp_replace(checkpoint, '.*/', ''), sum(rows_new) FROM stream_batches"
        " GROUP BY 1 ORDER BY 1"
    )
    assert db.fetchall() == [("bulk", 500_000), ("express", 100)]
    assert set(recount_differences(db).values()) == {0}


def file_state(db: Any, name: str) -> str | None:
    db.execute("SELECT state FROM ingest_files WHERE name = %s", (name,))
    row = db.fetchone()
    return row[0] if row else None
