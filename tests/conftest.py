"""Shared fixtures: real Postgres, broker and Spark cluster on free loopback ports, started
once per session; per-test topic, folders, checkpoint and truncated tables."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tripstream import SQL_DIR
from tripstream.db import apply_schema
from tripstream.settings import Settings, load_settings, settings_to_env
from tripstream.stack import procs
from tripstream.stack.broker import KafkaBroker, ensure_topic
from tripstream.stack.postgres import EmbeddedPostgres
from tripstream.stack.spark import SparkCluster, java_binary, spark_env

# The real 100-row sample (a copy of the brief's ../shared/data/trips.csv): in the clone, so
# a clone anywhere runs the tests.
SAMPLE = Path(__file__).resolve().parent / "sample" / "trips.csv"

TABLES = (
    "trip_data",
    "ingest_files",
    "quarantine",
    "ingested_chunks",
    "stream_batches",
    "region_hour_counts",
    "datasource_day_counts",
    "similar_trip_counts",
    "area_week_cells",
    "region_datasource_counts",
)


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll `check` until it returns a truthy value, with a deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    assert SAMPLE.exists(), f"sample data missing at {SAMPLE}"
    return SAMPLE


@pytest.fixture(scope="session")
def services_root() -> Iterator[Path]:
    # mode 0700, like a home folder: the embedded Postgres, run as 'nobody' when the tests
    # run as root, keeps what it must reach in a private folder of its own
    root = Path(tempfile.mkdtemp(prefix="tripstream-test-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(services_root: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(
        services_root / "postgres",
        procs.free_port(),
        extra_options="-c fsync=off -c synchronous_commit=off",
    )
    pg.start()
    apply_schema(pg.url)
    yield pg
    pg.remove()


# The SCRAM listener's user, made when the broker's storage is formatted.
SCRAM_USER, SCRAM_PASSWORD = "tripstream-test", "scram-secret-for-tests"


def start_broker(root: Path, name: str = "broker", **extra: Any) -> KafkaBroker:
    """A real Apache Kafka broker (KRaft, one node) on free loopback ports."""
    broker = KafkaBroker(
        root / name,
        procs.free_port(),
        procs.free_port(),
        load_settings({}).paths.jar_cache,
        name=name,
        **extra,
    )
    broker.start(root / "run", spark_env(root), java_binary(root))
    return broker


@pytest.fixture(scope="session")
def broker(services_root: Path) -> Iterator[KafkaBroker]:
    b = start_broker(
        services_root,
        scram_port=procs.free_port(),
        scram_users=((SCRAM_USER, SCRAM_PASSWORD),),
    )
    yield b
    procs.stop(services_root / "run", b.name, timeout=10)


@pytest.fixture(scope="session")
def spark_cluster(services_root: Path) -> Iterator[SparkCluster]:
    cluster = SparkCluster(services_root / "spark", procs.free_port(), procs.free_port())
    cluster.start(services_root / "run", services_root)
    yield cluster
    cluster.stop(services_root / "run")


def make_settings(
    root: Path, pg_url: str, bootstrap: str, master: str, topic: str, **extra: str
) -> Settings:
    env = {
        "TRIPSTREAM_DATABASE_URL": pg_url,
        "TRIPSTREAM_KAFKA_BOOTSTRAP": bootstrap,
        "TRIPSTREAM_KAFKA_TOPIC": topic,
        "TRIPSTREAM_SPARK_MASTER": master,
        "TRIPSTREAM_PATHS_STATE_DIR": str(root / "state"),
        "TRIPSTREAM_PATHS_INBOX": str(root / "inbox"),
        "TRIPSTREAM_PATHS_DONE": str(root / "done"),
        "TRIPSTREAM_PATHS_REJECTED": str(root / "rejected"),
        "TRIPSTREAM_STREAMING_CHECKPOINT_DIR": str(root / "checkpoint"),
        "TRIPSTREAM_PRODUCER_SETTLE_SECONDS": "0.5",
        "TRIPSTREAM_PRODUCER_SCAN_INTERVAL_SECONDS": "0.2",
        "TRIPSTREAM_PRODUCER_RECONCILE_AFTER_SECONDS": "3",
        "TRIPSTREAM_STREAMING_TRIGGER_SECONDS": "0.2",
        **extra,
    }
    for folder in ("inbox", "done", "rejected"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    return load_settings(env)


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for subprocesses."""
    return {
        **os.environ,
        **settings_to_env(settings),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }


@pytest.fixture
def db(postgres: EmbeddedPostgres) -> Iterator[Any]:
    """A cursor on a truncated database (autocommit)."""
    conn = psycopg2.connect(postgres.url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("TRUNCATE " + ", ".join(TABLES))
    yield cur
    conn.close()


@pytest.fixture
def settings(tmp_path: Path, postgres: EmbeddedPostgres, broker: KafkaBroker, db: Any) -> Settings:
    """Settings for one test: its own topic, folders and checkpoint; empty tables."""
    topic = f"trips-{uuid.uuid4().hex[:8]}"
    made = make_settings(tmp_path, postgres.url, broker.bootstrap, "local[1]", topic)
    ensure_topic(made.kafka, 2)
    return made


@pytest.fixture
def cluster_settings(settings: Settings, spark_cluster: SparkCluster) -> Settings:
    from dataclasses import replace

    return settings.replace(spark=replace(settings.spark, master=spark_cluster.master_url))


@pytest.fixture(scope="session")
def spark(services_root: Path) -> Iterator[Any]:
    """A driver-only SparkSession (local[1]) in the test process, for plan-time checks. It
    must not hold the cluster's two cores: the streaming jobs under test need them."""
    os.environ.update(
        {
            k: v
            for k, v in spark_env(services_root).items()
            if k in ("JAVA_HOME", "SPARK_LOCAL_IP", "PYSPARK_PYTHON", "SPARK_HOME")
        }
    )
    from streaming.job import build_session

    base = make_settings(
        services_root,
        "postgresql://unused@127.0.0.1:1/x",
        "127.0.0.1:1",
        "local[1]",
        "unused",
    )
    session = build_session(base, app="tripstream-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def recount_differences(cur: Any) -> dict[str, int]:
    cur.execute((SQL_DIR / "checks" / "recount.sql").read_text())
    return {name: int(n) for name, n in cur.fetchall()}


class ProducerThread:
    """The real producer service in a background thread, stopped at teardown."""

    def __init__(self, settings: Settings) -> None:
        from producer.service import run_producer

        self.stop = threading.Event()
        self.errors: list[BaseException] = []

        def target() -> None:
            try:
                run_producer(settings, self.stop)
            except BaseException as e:  # surfaced by the test through .errors
                self.errors.append(e)

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.fixture
def producer_thread(settings: Settings) -> Iterator[Callable[[Settings], ProducerThread]]:
    started: list[ProducerThread] = []

    def start(s: Settings | None = None) -> ProducerThread:
        p = ProducerThread(s or settings)
        started.append(p)
        return p

    yield start
    for p in started:
        p.close()


class JobProcess:
    """`python -m streaming` as a real client-mode driver on the cluster (a subprocess)."""

    def __init__(self, settings: Settings, log: Path, services_root: Path) -> None:
        self.settings, self.log, self.root = settings, log, services_root
        self.proc: Any = None

    def start(self, **extra_env: str) -> JobProcess:
        import subprocess

        env = settings_env(self.settings)
        env.update({k: v for k, v in spark_env(self.root).items() if k == "JAVA_HOME"})
        env.update(extra_env)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streaming"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_started(self) -> None:
        """Until the driver has registered and started its query."""
        wait_for(
            lambda: "streaming " in self.text() and "-> " in self.text(),
            120,
            "streaming job started",
        )

    def wait_exit(self, timeout: float = 60) -> int:
        return int(self.proc.wait(timeout=timeout))

    def kill(self) -> None:
        import signal

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            procs.terminate(self.proc.pid, timeout=30)
            self.proc.wait(timeout=30)


@pytest.fixture
def streaming_job(
    cluster_settings: Settings, tmp_path: Path, services_root: Path
) -> Iterator[Callable[..., JobProcess]]:
    jobs: list[JobProcess] = []

    def start(settings: Settings | None = None, **extra_env: str) -> JobProcess:
        job = JobProcess(
            settings or cluster_settings, tmp_path / f"job-{len(jobs)}.log", services_root
        ).start(**extra_env)
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        job.stop()


def committed_rows(cur: Any) -> int:
    cur.execute("SELECT count(*) FROM trip_data")
    return int(cur.fetchone()[0])


def arrow_batch_of(
    path: Path, file_id: int, partition: int = 0, first_offset: int = 0, chunk_rows: int = 5000
) -> Any:
    """A file as the source would deliver it: one Arrow batch per chunk, concatenated."""
    import pyarrow as pa

    from tripstream.floor import decoded_chunks

    batches = list(decoded_chunks(path, file_id, chunk_rows, partition, first_offset))
    return pa.Table.from_batches(batches)


def load_through_writer(url: str, paths: list[Path], checkpoint: str = "direct") -> None:
    """Commit files with the real task writer and batch record (no broker, no Spark): fast
    query fixtures."""
    from streaming.task import commit_rows
    from streaming.writer import record_batch

    conn = psycopg2.connect(url)
    try:
        for batch_id, path in enumerate(paths):
            result = commit_rows(conn, arrow_batch_of(path, 1000 + batch_id), batch_id)
            record_batch(url, checkpoint, batch_id, result, 0)
    finally:
        conn.close()
