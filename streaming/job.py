"""The streaming query: Kafka topic -> foreachBatch -> Postgres, on the standalone cluster.

Submit it (what `tripstream up` runs):

    spark-submit --master spark://127.0.0.1:7077 --executor-memory 512m \\
        --total-executor-cores 2 --conf spark.executor.cores=1 streaming/job.py

Settings come from config/defaults.toml + TRIPSTREAM_* (see README). Executors import
`streaming.source` from the project's venv (PYSPARK_PYTHON), installed with `pip install -e`.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession

from streaming.connector import connector_stream
from streaming.source import TripKafkaDataSource
from streaming.trim import BrokerTrimmer
from streaming.writer import BatchWriter
from tripstream.db import apply_schema, retry
from tripstream.errors import SetupError
from tripstream.settings import Settings, load_settings

logger = logging.getLogger(__name__)


def build_session(settings: Settings, app: str = "tripstream-streaming") -> SparkSession:
    spark = settings.spark
    session = (
        SparkSession.builder.appName(app)
        .master(spark.master)
        .config("spark.executor.memory", spark.executor_memory)
        .config("spark.executor.cores", "1")
        .config("spark.cores.max", str(spark.workers * spark.worker_cores))
        .config("spark.driver.memory", spark.driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.dataSource.register(TripKafkaDataSource)
    return session


def make_writer(settings: Settings, checkpoint: Path) -> BatchWriter:
    """The foreachBatch sink, trimming committed records from the broker if configured."""
    trimmer = (
        BrokerTrimmer(settings.kafka.bootstrap, settings.kafka.topic)
        if settings.kafka.trim_committed
        else None
    )
    return BatchWriter(settings.database.url, str(checkpoint), trimmer)


def start_query(
    session: SparkSession,
    settings: Settings,
    *,
    checkpoint: Path | None = None,
    writer: BatchWriter | None = None,
    available_now: bool = False,
) -> Any:
    """Start the streaming query; returns the StreamingQuery."""
    checkpoint = checkpoint or settings.streaming.checkpoint_dir
    writer = writer or make_writer(settings, checkpoint)
    s = settings.streaming
    if s.source_format == "kafka":  # the JVM connector, when its jar is on the classpath
        stream = connector_stream(session, settings)
    elif s.source_format == "tripkafka":
        stream = (
            session.readStream.format("tripkafka")
            .option("bootstrap", settings.kafka.bootstrap)
            .option("topic", settings.kafka.topic)
            .option("maxRecordsPerTrigger", str(s.max_records_per_trigger))
            .option("minPartitions", str(s.min_partitions))
            .option("expressLane", str(settings.kafka.express_lane_bytes > 0).lower())
            .load()
        )
    else:
        raise SetupError(
            f"unknown streaming.source_format {s.source_format!r}. Try: tripkafka (the "
            "Python source, default) or kafka (needs the spark-sql-kafka connector jar)."
        )
    query = (
        stream.writeStream.foreachBatch(writer)
        .option("checkpointLocation", str(checkpoint))
        .queryName("trips_to_postgres")
    )
    if available_now:
        query = query.trigger(availableNow=True)
    else:
        query = query.trigger(processingTime=f"{int(s.trigger_seconds * 1000)} milliseconds")
    return query.start()


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = load_settings()
    retry(lambda: apply_schema(settings.database.url), what="apply schema", attempts=10)
    session = build_session(settings)
    session.sparkContext.setLogLevel("WARN")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    delay = 2.0
    # One writer (one Postgres connection, one admin client) for every restart of the query.
    writer = make_writer(settings, settings.streaming.checkpoint_dir)
    while not stop.is_set():
        query = start_query(session, settings, writer=writer)
        logger.info(
            "streaming %s -> %s (checkpoint %s)",
            settings.kafka.topic,
            settings.database.url.rsplit("@", 1)[-1],
            settings.streaming.checkpoint_dir,
        )
        while query.isActive and not stop.is_set():
            try:
                query.awaitTermination(1)
            except StreamingQueryException:
                break  # handled below: the failure is logged and the query restarted
        if query.isActive:
            logger.info("stopping the query (state is in the checkpoint)")
            query.stop()
            break
        # The query failed (e.g. a broker outage outlasted Spark's task retries). Writes are
        # idempotent, so restarting from the checkpoint is safe: replayed batches are no-ops.
        logger.error(
            "the streaming query failed: %s; restarting from the checkpoint in %.0fs",
            str(query.exception()).splitlines()[0],
            delay,
        )
        if stop.wait(delay):
            break
        delay = min(delay * 2, 60.0)
    writer.close()
    session.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
