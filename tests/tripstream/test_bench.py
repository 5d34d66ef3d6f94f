"""A tiny smoke run of the benchmark: the report is produced and the counts are exact."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from tripstream.bench import run_bench, warm_up
from tripstream.floor import measure_floor
from tripstream.generate import generate_files
from tripstream.kafka_clients import consumer
from tripstream.settings import Settings

pytestmark = pytest.mark.integration


def test_bench_smoke_produces_an_exact_report(
    cluster_settings: Settings, db: Any, tmp_path: Path, producer_thread: Any, streaming_job: Any
) -> None:
    job = streaming_job()
    producer_thread(cluster_settings)
    job.wait_started()
    args = argparse.Namespace(
        smoke=True, rows=0, files=0, out=str(tmp_path / "results"), no_floor=False
    )
    requested = "SELECT num_requested FROM pg_stat_checkpointer"
    db.execute(requested)
    (checkpoints,) = db.fetchone()
    assert run_bench(cluster_settings, args, start_stack=False) == 0
    # the pipeline and the floor each start at a checkpoint (the writer may request one)
    db.execute(requested)
    assert db.fetchone()[0] >= checkpoints + 2
    reports = list((tmp_path / "results").glob("*.json"))
    assert len(reports) == 1
    result = json.loads(reports[0].read_text())
    assert result["pipeline"]["complete"] is True
    # data + two latency probes + the warm-up file
    assert result["exactness"]["trip_data_rows"] == 5000 + 200 + 100
    assert result["exactness"]["trip_data_size"].endswith(("kB", "MB"))  # partitions summed
    assert result["warmup_s"] > 0
    assert {
        k: v for k, v in result["exactness"].items() if isinstance(v, int) and k != "trip_data_rows"
    } == dict.fromkeys(
        [
            "region_hour_counts",
            "datasource_day_counts",
            "similar_trip_counts",
            "area_week_cells",
            "region_datasource_counts",
            "duplicate (file_id, line_no)",
        ],
        0,
    )
    assert result["ceiling"]["rows"] == 5000
    assert len(result["pipeline"]["latency_s"]["samples"]) == 2
    assert set(result["queries_ms"]) >= {"similar", "latest-datasource"}
    assert reports[0].with_suffix(".png").stat().st_size > 1000
    report = reports[0].with_suffix(".md").read_text()
    assert "COPY ceiling" in report and "Postgres floor" in report
    # the floor ran the writer's SQL on the same 5000 rows, in a database of its own
    assert result["floor"]["rows"] == 5000 and result["floor"]["rows_per_s"] > 0
    assert result["floor_ratio"] == pytest.approx(
        result["pipeline"]["rows_per_s"] / result["floor"]["rows_per_s"]
    )
    assert len(result["deciles"]) == 10 and all(d > 0 for d in result["deciles"])
    # the CPU per process: Postgres (found by its backend's parent) wrote in both phases,
    # and in the floor the bench's own writers fed it
    assert result["cpu_s"]["postgres"] > 0
    assert result["floor"]["cpu_s"]["postgres"] > 0
    assert result["floor"]["cpu_s"]["floor writers"] > 0
    # no process's CPU goes backwards (a Python worker that exits keeps what it used)
    assert min(result["cpu_s"].values()) >= 0 and min(result["floor"]["cpu_s"].values()) >= 0
    assert "floor CPU a row" in report
    db.execute("SELECT count(*) FROM pg_database WHERE datname LIKE '%%_floor'")
    assert db.fetchone() == (0,)  # dropped after
    # the disk the floor needs: the generated files and the topic's records went once decoded
    assert not list((Path(cluster_settings.paths.state_dir) / "bench" / "data").glob("*.csv"))
    client = consumer(cluster_settings.kafka)
    try:
        parts = [TopicPartition(cluster_settings.kafka.topic, p) for p in (0, 1)]
        assert client.beginning_offsets(parts) == client.end_offsets(parts)
        assert sum(client.end_offsets(parts).values()) > 0  # there were records
    finally:
        client.close()
    # a bench again on the same database warms up with a file of its own: the one before
    # is found committed at once, and would warm nothing up (and say -950 s)
    assert 0 < warm_up(cluster_settings, tmp_path / "again") < 60


def test_floor_drops_the_trip_data_partitions_its_writers_are_done_with(
    postgres: Any, tmp_path: Path
) -> None:
    # 6000 rows in 40-row batches: batch ids 0-149, trip_data partitions of 50 batch ids.
    # When batch 100 starts, none of the three writers can touch partition 0-49 again: it
    # goes, and the floor needs no second copy of trip_data on the disk (100M rows: 22 GB).
    files = generate_files(tmp_path / "data", rows=6000, files=2, seed=3)
    result = measure_floor(
        postgres.url, files, tmp_path / "floor", chunk_rows=20, rows_per_batch=40, writers=3
    )
    assert result["rows"] == 6000
    assert result["partitions_dropped"] == 1
    assert not list((tmp_path / "floor").glob("*.parquet"))  # the decoded batches are gone
