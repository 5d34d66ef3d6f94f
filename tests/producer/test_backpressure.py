"""Backpressure: the producer holds publishing while the stream is too far behind."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.conftest import wait_for
from tripstream.generate import generate_files
from tripstream.settings import Settings


def broker_ends(settings: Settings) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    try:
        parts = consumer.partitions_for_topic(settings.kafka.topic) or set()
        ends = consumer.end_offsets([TopicPartition(settings.kafka.topic, p) for p in parts])
        return {tp.partition: int(o) for tp, o in ends.items()}
    finally:
        consumer.close()


@pytest.mark.integration
def test_publishing_waits_for_the_stream_and_resumes(
    settings: Settings, db: Any, tmp_path: Path, producer_thread: Any
) -> None:
    held = settings.replace(
        producer=dataclasses.replace(settings.producer, chunk_rows=100, max_backlog_records=3)
    )
    (path,) = generate_files(tmp_path / "gen", rows=1000, files=1, seed=5, bad_share=0.0)
    producer = producer_thread(held)
    path.rename(held.paths.inbox / path.name)

    # No stream commits anything: publishing stops near the limit, well short of 10 records.
    wait_for(lambda: sum(broker_ends(held).values()) >= 3, 30, "the first records")
    time.sleep(3)
    sent = sum(broker_ends(held).values())
    assert 3 <= sent < 10
    db.execute("SELECT state FROM ingest_files")
    assert db.fetchone()[0] == "publishing"

    # The stream "commits" everything on the broker: the producer goes on to the end.
    def stream_caught_up() -> bool:
        ends = broker_ends(held)
        db.execute(
            "INSERT INTO stream_batches (checkpoint, batch_id, offsets, rows_in, rows_new,"
            " duration_ms) VALUES ('test', %s, %s, 0, 0, 0)",
            (int(time.time() * 1000), json.dumps({"start": {}, "end": ends})),
        )
        db.execute("SELECT state, rows_published FROM ingest_files")
        return db.fetchone() == ("published", 1000)

    wait_for(stream_caught_up, 60, "publishing to finish")
    assert sum(broker_ends(held).values()) == 10
    assert not producer.errors
