"""Faults during a run: kill -9 driver / executor / whole Spark worker / producer / broker,
restart Postgres. Every test ends with the same proof: all valid rows committed once,
counts exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import pytest

from tests.conftest import (
    committed_rows,
    recount_differences,
    settings_env,
    start_broker,
    wait_for,
)
from tripstream.generate import generate_files
from tripstream.settings import Settings
from tripstream.stack import procs
from tripstream.stack.broker import ensure_topic
from tripstream.stack.postgres import EmbeddedPostgres
from tripstream.stack.spark import SparkCluster, java_binary, spark_env

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


def drop(settings: Settings, tmp_path: Path, rows: int, files: int, seed: int) -> int:
    """Generate files and rename them into the inbox; returns the valid row count."""
    paths = generate_files(tmp_path / f"gen-{seed}", rows=rows, files=files, seed=seed)
    for path in paths:
        path.rename(settings.paths.inbox / path.name)
    manifest = json.loads((tmp_path / f"gen-{seed}" / "manifest.json").read_text())
    return sum(int(f["valid"]) for f in manifest)


def assert_exact(url: str, expected: int) -> None:
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        assert committed_rows(cur) == expected
        assert set(recount_differences(cur).values()) == {0}
        cur.execute("SELECT count(*) FROM ingest_files WHERE state <> 'committed'")
        assert cur.fetchone() == (0,)
    conn.close()


def rows_in(url: str) -> int:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            return committed_rows(cur)
    finally:
        conn.close()


def test_driver_killed_again_and_again(
    cluster_settings: Settings, db: Any, tmp_path: Path, producer_thread: Any, streaming_job: Any
) -> None:
    url = cluster_settings.database.url
    producer_thread(cluster_settings)
    job = streaming_job()
    expected = 0
    # two rounds: the second kill hits a job that recovered from the first (a third round
    # cost 60 s of CI and kills the same way again)
    for kill in range(2):  # each round: new data, wait until it flows, then kill -9
        floor = rows_in(url)
        expected += drop(cluster_settings, tmp_path, 300_000, 2, seed=11 + kill)
        wait_for(partial(lambda f: rows_in(url) > f, floor), 180, f"progress before kill {kill}")
        job.kill()  # kill -9 of the driver's process group, mid-batch or between batches
        job = streaming_job()
    wait_for(lambda: rows_in(url) >= expected, 240, "all rows after the kills")
    wait_for(lambda: _all_committed(db), 60, "every file committed")
    assert_exact(url, expected)


def test_executor_killed_mid_stream(
    cluster_settings: Settings,
    db: Any,
    tmp_path: Path,
    producer_thread: Any,
    streaming_job: Any,
    spark_cluster: SparkCluster,
) -> None:
    url = cluster_settings.database.url
    producer_thread(cluster_settings)
    streaming_job()
    expected = drop(cluster_settings, tmp_path, 200_000, 2, seed=12)
    wait_for(lambda: rows_in(url) > 0, 180, "first rows")
    executors = wait_for(lambda: _executors(spark_cluster.root), 30, "an executor JVM")
    os.kill(executors[0], signal.SIGKILL)
    wait_for(lambda: rows_in(url) >= expected, 240, "all rows after the executor died")
    wait_for(lambda: spark_cluster.alive_workers() == 2, 30, "both workers alive")
    assert_exact(url, expected)


def test_postgres_restart_mid_stream(
    cluster_settings: Settings,
    db: Any,
    tmp_path: Path,
    producer_thread: Any,
    streaming_job: Any,
    postgres: EmbeddedPostgres,
    spark_cluster: SparkCluster,
) -> None:
    url = cluster_settings.database.url
    began = time.time()
    producer_thread(cluster_settings)
    job = streaming_job()
    expected = drop(cluster_settings, tmp_path, 800_000, 4, seed=13)
    wait_for(lambda: rows_in(url) > 0, 180, "first rows")
    assert rows_in(url) < expected  # batches are still to come when the database goes
    postgres.stop("immediate")  # a crash: in-flight transactions vanish
    postgres.start()
    wait_for(lambda: rows_in(url) >= expected, 240, "all rows after the restart")
    assert job.proc.poll() is None, "the job must survive a database restart"
    # the tasks write, so they are the ones that retried: the executors' logs say so
    assert "retrying" in job.text() + executor_logs(spark_cluster, since=began)
    assert_exact(url, expected)


def test_producer_killed_while_publishing(
    cluster_settings: Settings, db: Any, tmp_path: Path, streaming_job: Any
) -> None:
    url = cluster_settings.database.url
    settings = cluster_settings.replace(
        producer=replace(cluster_settings.producer, chunk_rows=2000)
    )
    env = settings_env(settings)
    log = (tmp_path / "producer.log").open("ab")

    def start_producer() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "producer"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    producer = start_producer()
    expected = drop(settings, tmp_path, 1_000_000, 1, seed=14)
    wait_for(lambda: _state(db) == "publishing", 60, "publishing")
    os.killpg(producer.pid, signal.SIGKILL)
    producer.wait(timeout=10)
    assert any(p.is_file() for p in settings.paths.inbox.iterdir())  # not moved yet
    producer = start_producer()
    try:
        streaming_job(settings)
        wait_for(lambda: _state(db) == "committed", 240, "file committed after the restart")
        assert_exact(url, expected)
    finally:
        procs.terminate(producer.pid, timeout=10)


def test_whole_spark_worker_killed_mid_stream(
    cluster_settings: Settings,
    db: Any,
    tmp_path: Path,
    producer_thread: Any,
    streaming_job: Any,
    spark_cluster: SparkCluster,
    services_root: Path,
) -> None:
    """kill -9 of a worker JVM: its executor dies with it (it watches its worker), the
    master drops the worker, and the job finishes on the other worker alone."""
    url = cluster_settings.database.url
    run = services_root / "run"
    producer_thread(cluster_settings)
    streaming_job()
    expected = drop(cluster_settings, tmp_path, 400_000, 4, seed=16)
    wait_for(
        lambda: len(_executors(spark_cluster.root)) == 2 and rows_in(url) > 0,
        180,
        "rows on two executors",
    )
    worker = procs.read_pid(run, "spark-worker-1")
    assert worker is not None
    try:
        os.kill(worker, signal.SIGKILL)  # the worker JVM only: its executor must follow
        wait_for(lambda: not procs.alive(worker), 10, "the killed worker to exit")
        wait_for(
            lambda: len(_executors(spark_cluster.root)) == 1, 60, "its executor to die with it"
        )
        assert rows_in(url) < expected  # batches were still to come
        wait_for(lambda: rows_in(url) >= expected, 300, "all rows on the one worker left")
        wait_for(lambda: _all_committed(db), 60, "every file committed")
        assert_exact(url, expected)
    finally:  # the cluster is shared by the session: bring the worker back
        spark_cluster.start_worker(run, spark_env(services_root), 1)
        wait_for(lambda: spark_cluster.alive_workers() == 2, 90, "both workers alive again")


def test_broker_kill9_mid_stream_with_acks_all_loses_nothing(
    cluster_settings: Settings,
    db: Any,
    tmp_path: Path,
    producer_thread: Any,
    streaming_job: Any,
    services_root: Path,
) -> None:
    """kill -9 of Apache Kafka while files are published and streamed. With acks=all the
    broker has every acknowledged record in its log (the page cache survives the process),
    so nothing needs re-publishing: the reconciler stays a guard."""
    broker = start_broker(tmp_path, name="fault-broker")
    run = tmp_path / "run"
    settings = cluster_settings.replace(
        kafka=replace(cluster_settings.kafka, bootstrap=broker.bootstrap)
    )
    ensure_topic(settings.kafka, 2)
    url = settings.database.url
    try:
        producer_thread(settings)
        job = streaming_job(settings)
        expected = drop(settings, tmp_path, 600_000, 4, seed=15)
        wait_for(lambda: rows_in(url) > 0, 180, "first rows")
        pid = procs.read_pid(run, broker.name) or 0
        os.killpg(pid, signal.SIGKILL)
        # SIGKILL is delivered, not awaited: restarting while the old process still holds
        # the port would fail.
        wait_for(lambda: not procs.alive(pid), 10, "the killed broker to exit")
        assert rows_in(url) < expected  # killed mid-stream, not after the last batch
        broker.start(run, spark_env(tmp_path), java_binary(tmp_path))
        wait_for(lambda: rows_in(url) >= expected, 300, "all rows after the broker crash")
        wait_for(lambda: _all_committed(db), 60, "every file committed")
        assert_exact(url, expected)
        db.execute("SELECT coalesce(sum(republishes), 0) FROM ingest_files")
        republished = int(db.fetchone()[0])
        print(f"files re-published by the reconciler after the broker's kill -9: {republished}")
        assert republished == 0
        assert job.proc.poll() is None
    finally:
        procs.stop(run, broker.name, timeout=10)


def executor_logs(cluster: SparkCluster, since: float) -> str:
    """The stderr of every executor of the applications started since `since`."""
    logs = [
        p
        for p in cluster.root.glob("worker-*/app-*/*/stderr")
        if p.parent.parent.stat().st_mtime >= since
    ]
    return "".join(p.read_text(errors="replace") for p in logs)


def _executors(root: Path) -> list[int]:
    """This test cluster's executors: each runs in its worker's work dir under `root`, so
    another stack's executors on the machine are not counted (a bench left running had
    made four)."""
    found = []
    for p in psutil.process_iter(["cmdline", "cwd"]):
        cwd = p.info["cwd"]
        if "CoarseGrainedExecutorBackend" in " ".join(p.info["cmdline"] or []) and cwd:
            if Path(cwd).is_relative_to(root):
                found.append(p.pid)
    return found


def _all_committed(db: Any) -> bool:
    db.execute("SELECT count(*) = count(*) FILTER (WHERE state = 'committed') FROM ingest_files")
    return bool(db.fetchone()[0])


def _count_state(db: Any, state: str) -> int:
    db.execute("SELECT count(*) FROM ingest_files WHERE state IN (%s, 'committed')", (state,))
    return int(db.fetchone()[0])


def _state(db: Any) -> str | None:
    db.execute("SELECT state FROM ingest_files LIMIT 1")
    row = db.fetchone()
    return None if row is None else str(row[0])
