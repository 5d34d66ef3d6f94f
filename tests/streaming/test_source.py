"""The source: Spark's own Kafka connector, read through the real broker, in plain and
SCRAM-authenticated form; the record mapping runs in the JVM (no Python in the plan)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from producer.chunks import build_chunk
from producer.publisher import Publisher
from streaming.source import kafka_stream, record_columns
from tests.conftest import SCRAM_PASSWORD, SCRAM_USER
from tripstream.errors import SetupError
from tripstream.kafka_clients import client_options, connector_options, topic_partitions
from tripstream.records import chunk_headers, decode_records, encode_payload, record_key
from tripstream.settings import KafkaSettings, Settings
from tripstream.stack.broker import KafkaBroker, ensure_topic

CHUNK = build_chunk(
    7,
    b"Prague,POINT (14.4 50.0),POINT (14.5 50.1),2018-05-28 09:03:40,cheap_mobile\n"
    b"Turin,POINT (7.6 45.0),POINT (7.7 45.1),2018-05-21 02:54:04,baba_car\n",
    name="source.csv",
    max_len=100,
).table
CONNECTOR_SCHEMA = (
    "value binary, headers array<struct<key: string, value: binary>>, partition int, "
    "offset bigint, timestamp timestamp"
)


def scram(kafka: KafkaSettings, broker: KafkaBroker, password: str) -> KafkaSettings:
    return replace(
        kafka,
        bootstrap=broker.scram_bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username=SCRAM_USER,
        sasl_password=password,
    )


def test_security_settings_reach_both_clients() -> None:
    k = KafkaSettings(
        bootstrap="b1:9096,b2:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="ingest",
        sasl_password='p"w\\d',
        ssl_cafile="/etc/ca.pem",
    )
    python = client_options(k)
    assert python["bootstrap_servers"] == ["b1:9096", "b2:9096"]
    assert (python["security_protocol"], python["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (python["sasl_plain_username"], python["sasl_plain_password"]) == ("ingest", 'p"w\\d')
    assert python["ssl_cafile"] == "/etc/ca.pem"
    jvm = connector_options(k)
    assert jvm["kafka.security.protocol"] == "SASL_SSL"
    assert jvm["kafka.sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="ingest" password="p\\"w\\\\d";'
    )
    assert jvm["kafka.ssl.truststore.type"] == "PEM"
    assert jvm["kafka.ssl.truststore.location"] == "/etc/ca.pem"
    assert "password" not in repr(k)  # the secret never shows in a settings dump


def test_incomplete_sasl_settings_are_a_setup_error_naming_the_setting() -> None:
    with pytest.raises(SetupError, match="TRIPSTREAM_KAFKA_SASL_MECHANISM"):
        client_options(KafkaSettings(bootstrap="b:1", security_protocol="SASL_PLAINTEXT"))
    with pytest.raises(SetupError, match="TRIPSTREAM_KAFKA_SASL_USERNAME"):
        connector_options(
            KafkaSettings(bootstrap="b:1", security_protocol="SASL_SSL", sasl_mechanism="PLAIN")
        )
    with pytest.raises(SetupError, match="TRIPSTREAM_KAFKA_SECURITY_PROTOCOL"):
        client_options(KafkaSettings(bootstrap="b:1", security_protocol="TLS"))


@pytest.mark.integration
def test_connector_rows_become_records_in_the_jvm(spark: Any) -> None:
    at = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
    headers = [(k, bytearray(v)) for k, v in chunk_headers(99, 7, 2)]
    value = bytearray(encode_payload(CHUNK, "zstd"))
    raw = spark.createDataFrame([(value, headers, 3, 12, at)], CONNECTOR_SCHEMA)
    records = raw.select(*record_columns())
    plan = records._jdf.queryExecution().executedPlan().toString()
    assert "Python" not in plan and "Arrow" not in plan, plan  # no Python work to read
    rows = decode_records(records.toArrow()).to_pylist()
    assert [r["line_no"] for r in rows] == [7, 8]
    assert {r["file_id"] for r in rows} == {99}
    assert {r["chunk_line"] for r in rows} == {7}
    assert {r["record_key"] for r in rows} == {record_key(3, 12)}
    assert {r["kafka_ts"] for r in rows} == {int(at.timestamp() * 1000)}
    assert rows[1]["region"] == "Turin" and rows[1]["ts"] == 1526871244


def read_all(spark: Any, settings: Settings, checkpoint: Path) -> pa.Table:
    """Everything on the topic, through the connector (availableNow), as trip rows."""
    seen: list[pa.Table] = []

    def collect(batch_df: Any, batch_id: int) -> None:
        seen.append(batch_df.toArrow())

    query = (
        kafka_stream(spark, settings)
        .writeStream.foreachBatch(collect)
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination(120)
    assert query.exception() is None
    return decode_records(pa.concat_tables(seen)) if seen else pa.table({})


def publish(kafka: KafkaSettings, settings: Settings, file_id: int, chunks: int) -> None:
    publisher = Publisher(kafka, settings.producer)
    try:
        for n in range(chunks):
            publisher.send(file_id, 1 + 2 * n, CHUNK)
        publisher.confirm(file_id)
    finally:
        publisher.close()


@pytest.mark.integration
def test_the_connector_reads_every_record_once_from_kafka(
    spark: Any, settings: Settings, tmp_path: Path
) -> None:
    publish(settings.kafka, settings, 501, 3)
    rows = read_all(spark, settings, tmp_path / "cp")
    assert rows.num_rows == 6
    assert set(rows.column("chunk_line").to_pylist()) == {1, 3, 5}
    assert len(set(rows.column("record_key").to_pylist())) == 3
    # a replay from the same checkpoint reads nothing new
    assert read_all(spark, settings, tmp_path / "cp").num_rows == 0


@pytest.mark.integration
def test_scram_credentials_pass_to_the_producer_and_the_connector(
    spark: Any, settings: Settings, broker: KafkaBroker, tmp_path: Path
) -> None:
    kafka = scram(settings.kafka, broker, SCRAM_PASSWORD)
    ensure_topic(replace(kafka, topic=settings.kafka.topic + "-scram"), 2)
    secure = settings.replace(kafka=replace(kafka, topic=settings.kafka.topic + "-scram"))
    publish(secure.kafka, secure, 502, 2)
    rows = read_all(spark, secure, tmp_path / "cp")
    assert rows.num_rows == 4 and set(rows.column("file_id").to_pylist()) == {502}


@pytest.mark.integration
def test_a_wrong_scram_password_is_a_clear_error_not_a_hang(
    settings: Settings, broker: KafkaBroker
) -> None:
    wrong = scram(settings.kafka, broker, "not-the-password")
    started = time.monotonic()
    with pytest.raises(SetupError, match="refused user 'tripstream-test'.*SASL_PASSWORD"):
        Publisher(wrong, settings.producer)
    with pytest.raises(SetupError, match="refused user"):
        topic_partitions(wrong)  # the streaming job's check before it starts Spark
    assert time.monotonic() - started < 60  # two bootstrap timeouts, not forever
