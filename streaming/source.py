"""The topic as a stream: Spark's own Kafka connector (`format("kafka")`,
org.apache.spark:spark-sql-kafka-0-10_2.13 at the pinned pyspark's version, on the
classpath through `spark.jars`: streaming/job.py).

The connector checkpoints exact offset ranges and replays them on restart. Each Kafka
record is one chunk of rows (tripstream/records.py); `record_columns` maps the connector's
row (value, headers, partition, offset, timestamp) to the record schema the writer
decodes, with Spark SQL expressions only: the executors run no Python to read.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F  # noqa: N812 - Spark's own idiom

from tripstream.kafka_clients import client_options, connector_options, unreachable
from tripstream.records import RECORD_KEY_PARTITION_SHIFT, chunk_headers
from tripstream.settings import KafkaSettings, Settings
from tripstream.stack.broker import ensure_topic


def _header(name: str, kind: str) -> Column:
    """A chunk header's value (ASCII digits) as a number: the first header of that key."""
    value = F.element_at(F.filter("headers", lambda h: h["key"] == F.lit(name)), 1)["value"]
    return value.cast("string").cast(kind)


def record_columns() -> list[Column]:
    """Connector rows -> RECORD_SCHEMA (file_id, chunk_line, record_key, kafka_ts, payload)."""
    key = F.shiftleft(F.col("partition").cast("bigint"), RECORD_KEY_PARTITION_SHIFT)
    return [
        _header("file_id", "bigint").alias("file_id"),
        _header("first_line", "int").alias("chunk_line"),
        key.bitwiseOR(F.col("offset")).alias("record_key"),
        F.unix_millis("timestamp").alias("kafka_ts"),
        F.col("value").alias("payload"),
    ]


def _connector(reader: Any, kafka: KafkaSettings) -> Any:
    """The connector's options for a stream or a batch read: client settings, headers."""
    return (
        reader.format("kafka")
        .options(**connector_options(kafka))
        .option("includeHeaders", "true")
        # A task's cached consumer leaves a prefetch at the end of its range; at the log's
        # end the broker holds it for fetch.max.wait.ms (500 ms by default), and the next
        # task's first poll waited for it: a 100-row file took 0.55 s to read.
        .option("kafka.fetch.max.wait.ms", "10")
    )


def kafka_stream(session: Any, settings: Settings, partitions: tuple[int, ...] = ()) -> Any:
    """The topic (or some of its partitions: one lane) as a stream of records."""
    topic = settings.kafka.topic
    which = (
        ("assign", json.dumps({topic: list(partitions)})) if partitions else ("subscribe", topic)
    )
    raw = (
        _connector(session.readStream, settings.kafka)
        .option(*which)
        .option("startingOffsets", "earliest")
        # Records that retention removed before the stream read them were re-published by
        # the producer's reconciler from data/done/; the chunk ledger drops repeats.
        .option("failOnDataLoss", "false")
        .option("maxOffsetsPerTrigger", str(settings.streaming.max_records_per_trigger))
        .option("minPartitions", str(settings.streaming.min_partitions))
        .load()
    )
    return raw.select(*record_columns())


def warm_up_records(session: Any, kafka: KafkaSettings, count: int) -> DataFrame:
    """`count` empty records, new on the side topic <topic>-warmup, read back as a batch in
    `count` tasks through the same connector and columns as the stream: the job's warm-up
    (streaming/job.py). The trips topic itself gets nothing."""
    side = replace(kafka, topic=f"{kafka.topic}-warmup")
    ensure_topic(side, 1)
    try:
        producer = KafkaProducer(**client_options(side), acks="all")
    except KafkaError as e:  # cannot bootstrap: one clear line
        raise unreachable(side, e) from e
    try:
        sent = [
            producer.send(side.topic, b"", partition=0, headers=chunk_headers(0, 0, 0))
            for _ in range(count)
        ]
        producer.flush()
        first = sent[0].get(timeout=30).offset
    finally:
        producer.close(timeout=10)
    ranges = {side.topic: {"0": first}}, {side.topic: {"0": first + count}}
    raw = (
        _connector(session.read, side)
        .option("assign", json.dumps({side.topic: [0]}))
        .option("startingOffsets", json.dumps(ranges[0]))
        .option("endingOffsets", json.dumps(ranges[1]))
        .option("minPartitions", str(count))
        .load()
    )
    return raw.select(*record_columns())
