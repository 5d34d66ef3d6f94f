"""The streaming query: Kafka topic -> foreachBatch -> Postgres, on the standalone cluster.

Submit it (what `tripstream up` runs):

    spark-submit --master spark://127.0.0.1:7077 --executor-memory 512m \\
        --total-executor-cores 4 --conf spark.executor.cores=2 \\
        --jars <the connector jars, python -m tripstream.stack.maven> streaming/job.py

Settings come from config/defaults.toml + TRIPSTREAM_* (see README). The session puts
Spark's Kafka connector on the classpath itself (`spark.jars`, resolved once from Maven
Central into paths.jar_cache: tripstream/stack/maven.py), for `python -m streaming`;
under spark-submit the driver's JVM is already running, so pass them with --jars as
`tripstream up` does. Executors run the writer's Python from the project's
venv (PYSPARK_PYTHON), installed with `pip install -e`.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError
from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from streaming.source import kafka_stream, warm_up_records
from streaming.task import FAULT_ENVS, RESULT_SCHEMA, warm_up
from streaming.writer import BatchWriter
from tripstream.db import apply_schema, retry
from tripstream.errors import TripstreamError
from tripstream.kafka_clients import topic_partitions
from tripstream.settings import Settings, load_settings
from tripstream.stack.maven import connector_jars
from tripstream.stack.procs import mark_ready
from tripstream.stack.spark import java_binary

logger = logging.getLogger(__name__)


def build_session(settings: Settings, app: str = "tripstream-streaming") -> SparkSession:
    spark = settings.spark
    jars = connector_jars(settings.paths.jar_cache, java_binary(settings.paths.state_dir))
    builder = (
        SparkSession.builder.appName(app)
        .master(spark.master)
        .config("spark.jars", ",".join(str(j) for j in jars))
        .config("spark.executor.memory", spark.executor_memory)
        .config("spark.executor.cores", str(spark.worker_cores))
        .config("spark.cores.max", str(spark.workers * spark.worker_cores))
        .config("spark.driver.memory", spark.driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        # No driver web UI (port 4040): nothing here reads it. The driver took 2.6-2.8 us of
        # CPU a row without it, 2.9-3.0 with it, in runs that also switched the payloads to
        # lz4, which the driver never decodes (docs/scale.md). The master's UI stays.
        .config("spark.ui.enabled", "false")
        .config("spark.scheduler.mode", "FAIR")
        # Spark's Kafka source pins each topic partition to one executor (a cached
        # consumer): with the default 3 s locality wait, a task whose executor is busy
        # waited for it while the other core sat idle, and the express lane's partition
        # shares an executor with half the bulk ones. Run every task on the first free core.
        .config("spark.locality.wait", "0s")
    )
    for name in FAULT_ENVS:  # fault injection for the tests, read by the tasks
        if name in os.environ:
            builder = builder.config(f"spark.executorEnv.{name}", os.environ[name])
    return builder.getOrCreate()


@dataclass(frozen=True)
class Lane:
    """One streaming query: a set of topic partitions, its own checkpoint and trigger."""

    name: str
    partitions: tuple[int, ...]  # empty: every partition of the topic
    checkpoint: Path
    trigger_seconds: float


@dataclass
class RestartBackoff:
    """Delay before restarting one lane's failed query: doubles with each failure up to
    `cap`, and starts over once the query had run `healthy_s` before it failed (a broker
    outage an hour ago does not make today's restart wait a minute)."""

    first: float = 2.0
    cap: float = 60.0
    healthy_s: float = 300.0
    _next: float = 0.0

    def after_failure(self, ran_s: float) -> float:
        if self._next == 0.0 or ran_s >= self.healthy_s:
            self._next = self.first
        delay = self._next
        self._next = min(delay * 2, self.cap)
        return delay


def plan_lanes(settings: Settings, partitions: list[int]) -> list[Lane]:
    """The queries to run over the topic's partitions. Without the express lane: one query
    over the whole topic (in checkpoint_dir). With it: "express" reads the last partition
    (where the producer sends small files) on a short trigger, and the bulk partitions are
    shared round-robin by `bulk_queries` queries."""
    s, k = settings.streaming, settings.kafka
    if not (s.express_query and k.express_lane_bytes > 0 and len(partitions) >= 2):
        return [whole_topic(settings)]
    bulk = sorted(partitions)[:-1]
    groups = max(1, min(s.bulk_queries, len(bulk)))
    names = [f"bulk-{g}" if groups > 1 else "bulk" for g in range(groups)]
    lanes = [
        Lane(name, tuple(bulk[g::groups]), s.checkpoint_dir / name, s.trigger_seconds)
        for g, name in enumerate(names)
    ]
    express = Lane(
        "express", (max(partitions),), s.checkpoint_dir / "express", s.express_trigger_seconds
    )
    return [express, *lanes]


def whole_topic(settings: Settings, checkpoint: Path | None = None) -> Lane:
    """The single query over every partition (no express lane)."""
    s = settings.streaming
    return Lane("trips", (), checkpoint or s.checkpoint_dir, s.trigger_seconds)


def start_query(
    session: SparkSession,
    settings: Settings,
    *,
    checkpoint: Path | None = None,
    writer: BatchWriter | None = None,
    available_now: bool = False,
    lane: Lane | None = None,
) -> Any:
    """Start one streaming query (by default over the whole topic); returns it."""
    lane = lane or whole_topic(settings, checkpoint)
    writer = writer or BatchWriter(settings.database.url, str(lane.checkpoint))
    stream = kafka_stream(session, settings, lane.partitions)
    # Each lane in its own fair-scheduler pool: an express task takes the next free core
    # instead of queueing behind a bulk batch's tasks.
    session.sparkContext.setLocalProperty("spark.scheduler.pool", lane.name)
    query = (
        stream.writeStream.foreachBatch(writer)
        .option("checkpointLocation", str(lane.checkpoint))
        .queryName(f"trips_to_postgres_{lane.name}".replace("-", "_"))
    )
    if available_now:
        query = query.trigger(availableNow=True)
    else:
        query = query.trigger(processingTime=f"{int(lane.trigger_seconds * 1000)} milliseconds")
    return query.start()


def warm_executors(session: SparkSession, settings: Settings) -> None:
    """One small task per executor core, before the queries start: executors registered,
    their JVMs' Kafka reader loaded (one record each from a side topic: the first read of an
    executor had taken 1.3-1.7 s), Python workers forked with the writer imported and
    connected. Without the side topic (a broker that refuses it) the Kafka part is skipped."""
    cores = settings.spark.workers * settings.spark.worker_cores
    task = functools.partial(warm_up, settings.database.url)
    try:
        records = warm_up_records(session, settings.kafka, cores)
    except (KafkaError, TripstreamError, Py4JJavaError) as e:
        logger.warning("executors warmed without a Kafka read: %s", str(e).splitlines()[0])
        records = session.range(0, cores, numPartitions=cores)
    records.mapInArrow(task, RESULT_SCHEMA).collect()


def wait_first_triggers(queries: list[Any], timeout_s: float = 120.0) -> None:
    """Until every query has run its first trigger (sources initialised, offsets fetched):
    that took 1-2 s after start(), and a file dropped meanwhile waited for it."""
    deadline = time.monotonic() + timeout_s
    while any(q.isActive and q.lastProgress is None for q in queries):
        if time.monotonic() > deadline:
            logger.warning("a query has not finished its first trigger in %.0f s", timeout_s)
            return
        time.sleep(0.05)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = load_settings()
    try:
        retry(lambda: apply_schema(settings.database.url), what="apply schema", attempts=10)
        # Before Spark starts: a wrong Kafka password or address is one clear line, here,
        # not a query that fails and restarts with backoff.
        partitions = retry(lambda: topic_partitions(settings.kafka), what="reach Kafka")
        began = time.monotonic()
        session = build_session(settings)
        session_s = time.monotonic() - began
    except TripstreamError as e:
        logger.error("%s", e)
        return 1
    session.sparkContext.setLogLevel("WARN")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    lanes = plan_lanes(settings, partitions)
    began = time.monotonic()
    warm_executors(session, settings)
    logger.info(
        "Spark session in %.1f s, executors warmed in %.1f s",
        session_s,
        time.monotonic() - began,
    )
    # One writer per lane, for every restart (the executors hold the connections).
    writers = {
        lane.name: BatchWriter(settings.database.url, str(lane.checkpoint)) for lane in lanes
    }
    queries: dict[str, Any] = {}
    backoff = {name: RestartBackoff() for name in writers}
    restart_at, started_at = dict.fromkeys(writers, 0.0), dict.fromkeys(writers, 0.0)
    ready = False
    while not stop.is_set():
        for lane in lanes:
            query = queries.get(lane.name)
            if query is not None and query.isActive:
                continue
            if query is not None:
                # The query failed (e.g. a broker outage outlasted Spark's task retries).
                # Writes are idempotent, so restarting from the checkpoint is safe.
                ran_s = time.monotonic() - started_at[lane.name]
                delay = backoff[lane.name].after_failure(ran_s)
                logger.error(
                    "the %s query failed: %s; restarting from its checkpoint in %.0fs",
                    lane.name,
                    str(query.exception()).splitlines()[0],
                    delay,
                )
                queries.pop(lane.name)
                restart_at[lane.name] = time.monotonic() + delay
            if time.monotonic() < restart_at[lane.name]:
                continue
            queries[lane.name] = start_query(
                session, settings, writer=writers[lane.name], lane=lane
            )
            started_at[lane.name] = time.monotonic()
            logger.info(
                "streaming %s partitions %s -> %s (checkpoint %s)",
                settings.kafka.topic,
                ",".join(map(str, lane.partitions)) or "all",
                settings.database.url.rsplit("@", 1)[-1],
                lane.checkpoint,
            )
        if len(queries) == len(lanes) and not ready:
            wait_first_triggers(list(queries.values()))
            mark_ready()  # `tripstream up` waits for every query to have started
            ready = True
        stop.wait(1.0)
    for name, query in queries.items():
        if query.isActive:
            logger.info("stopping the %s query (state is in the checkpoint)", name)
            query.stop()
    session.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
