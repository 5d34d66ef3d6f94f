"""The other source: Spark's JVM Kafka connector (`format("kafka")`), when its jar is on the
classpath (e.g. `--packages org.apache.spark:spark-sql-kafka-0-10_2.13:<spark version>` on
a machine that reaches Maven Central, or on Dataproc/EMR). Selected by
`streaming.source_format = "kafka"`; the Python source ("tripkafka") is the tested default.

The connector yields one row per Kafka record (value, headers, partition, offset,
timestamp); `to_records` turns them into the record rows the Python source yields
(tripstream/records.py), so the foreachBatch writer is the same and exactly-once works the
same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from tripstream.errors import SetupError
from tripstream.records import RECORD_ARROW_SCHEMA, RECORD_SCHEMA, record
from tripstream.settings import Settings


def to_records(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: connector rows (value, headers, partition, offset, timestamp)
    -> record rows (RECORD_ARROW_SCHEMA). Runs on the executors."""
    for batch in batches:
        out = []
        for r in batch.to_pylist():
            headers = [(h["key"], bytes(h["value"])) for h in r["headers"] or []]
            ts = r["timestamp"]
            ts_ms = int(ts.timestamp() * 1000) if ts is not None else 0
            out.append(record(bytes(r["value"]), headers, r["partition"], r["offset"], ts_ms))
        if out:
            table = pa.Table.from_batches(out, schema=RECORD_ARROW_SCHEMA).combine_chunks()
            yield from table.to_batches()


def connector_stream(session: Any, settings: Settings, partitions: tuple[int, ...] = ()) -> Any:
    """The topic (or some of its partitions) through the JVM connector, decoded to the
    Python source's schema."""
    topic = settings.kafka.topic
    which = (
        ("assign", json.dumps({topic: list(partitions)})) if partitions else ("subscribe", topic)
    )
    reader = (
        session.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap)
        .option(*which)
        .option("startingOffsets", "earliest")
        .option("includeHeaders", "true")
        # the producer re-publishes what a broker lost; the chunk ledger drops repeats
        .option("failOnDataLoss", "false")
        .option("maxOffsetsPerTrigger", str(settings.streaming.max_records_per_trigger))
        .option("minPartitions", str(settings.streaming.min_partitions))
    )
    try:
        raw = reader.load()
    except Exception as e:  # AnalysisException: the connector jar is not on the classpath
        raise SetupError(
            f"streaming.source_format = 'kafka' needs Spark's Kafka connector jar ({e}). Try: "
            "spark-submit --packages org.apache.spark:spark-sql-kafka-0-10_2.13:<spark "
            "version>, or TRIPSTREAM_STREAMING_SOURCE_FORMAT=tripkafka."
        ) from e
    return raw.select("value", "headers", "partition", "offset", "timestamp").mapInArrow(
        to_records, RECORD_SCHEMA
    )
