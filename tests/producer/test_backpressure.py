"""Backpressure: the producer holds publishing while the stream is too far behind, and
small files take the express lane past a held bulk file."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from producer.chunks import build_chunk
from producer.ledger import Ledger
from producer.publisher import Publisher, lane_partition
from tests.conftest import wait_for
from tripstream.generate import generate_files
from tripstream.settings import Settings


def chunk_of(first_line: int, line: bytes) -> Any:
    return build_chunk(first_line, line, name="b.csv", max_len=100).table


def broker_ends(settings: Settings) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    try:
        parts = consumer.partitions_for_topic(settings.kafka.topic) or set()
        ends = consumer.end_offsets([TopicPartition(settings.kafka.topic, p) for p in parts])
        return {tp.partition: int(o) for tp, o in ends.items()}
    finally:
        consumer.close()


def states(db: Any) -> dict[str, tuple[str, int]]:
    db.execute("SELECT name, state, rows_published FROM ingest_files")
    return {name: (state, n) for name, state, n in db.fetchall()}


def test_the_express_lane_is_the_last_partition_and_bulk_spreads_over_the_rest() -> None:
    assert lane_partition(7, [0, 1, 2, 3], express=True) == 3
    assert [lane_partition(t, [0, 1, 2, 3], express=False) for t in range(6)] == [0, 1, 2] * 2
    assert lane_partition(-5, [0, 1], express=False) == 0  # file ids may be negative
    assert lane_partition(9, [0], express=True) == 0  # one partition: no lane
    assert lane_partition(9, [], express=False) is None


def start_held(
    settings: Settings, tmp_path: Path, producer_thread: Any, express_bytes: int
) -> tuple[Settings, Path, Any]:
    """A producer allowed 3 records ahead of a stream that never commits, and a 1000-row
    file (10 chunks of 100) dropped into its inbox; returns once 3 records are out."""
    held = settings.replace(
        producer=dataclasses.replace(settings.producer, chunk_rows=100, max_backlog_records=3),
        kafka=dataclasses.replace(settings.kafka, express_lane_bytes=express_bytes),
    )
    (big,) = generate_files(tmp_path / "gen", rows=1000, files=1, seed=5, bad_share=0.0)
    producer = producer_thread(held)
    dropped = big.rename(held.paths.inbox / big.name)
    wait_for(lambda: sum(broker_ends(held).values()) >= 3, 30, "the first records")
    return held, dropped, producer


@pytest.mark.integration
def test_publishing_waits_for_the_stream_and_small_files_pass(
    settings: Settings, db: Any, tmp_path: Path, producer_thread: Any
) -> None:
    held, big, producer = start_held(settings, tmp_path, producer_thread, 20_000)
    (small,) = generate_files(tmp_path / "gen2", rows=50, files=1, seed=6, prefix="small")
    assert big.stat().st_size > 20_000 >= small.stat().st_size

    # No stream commits anything: the bulk file stops near the limit, short of 10 records.
    time.sleep(3)
    assert 3 <= broker_ends(held)[0] < 10
    assert states(db)[big.name][0] == "publishing"

    # A small file dropped now is published at once, on the express partition.
    small.rename(held.paths.inbox / small.name)
    wait_for(lambda: states(db).get(small.name, ("", 0))[0] == "published", 30, "small file")
    assert broker_ends(held)[1] == 1
    assert states(db)[big.name][0] == "publishing"

    # The stream "commits" everything on the broker: the bulk file goes on to the end.
    def stream_caught_up() -> bool:
        db.execute(
            "INSERT INTO stream_batches (checkpoint, batch_id, offsets, rows_in, rows_new,"
            " duration_ms) VALUES ('test', %s, %s, 0, 0, 0)",
            (int(time.time() * 1000), json.dumps({"start": {}, "end": broker_ends(held)})),
        )
        return states(db)[big.name] == ("published", 1000)

    wait_for(stream_caught_up, 60, "publishing to finish")
    assert broker_ends(held) == {0: 10, 1: 1}
    assert not producer.errors


@pytest.mark.integration
def test_a_held_producer_stops_promptly_and_keeps_the_file(
    settings: Settings, db: Any, tmp_path: Path, producer_thread: Any
) -> None:
    held, big, producer = start_held(settings, tmp_path, producer_thread, 0)
    time.sleep(1)
    started = time.monotonic()
    producer.close()
    assert not producer.thread.is_alive()
    assert time.monotonic() - started < 5
    assert (held.paths.inbox / big.name).exists()  # not moved: published again on restart
    assert states(db)[big.name][0] == "publishing"


@pytest.mark.integration
def test_a_small_file_passes_a_bulk_file_that_is_being_published(
    settings: Settings, db: Any, tmp_path: Path, producer_thread: Any
) -> None:
    """Not held back at all: a bulk file still lets small files through between chunks."""
    free = settings.replace(
        producer=dataclasses.replace(settings.producer, max_backlog_records=0),
        kafka=dataclasses.replace(settings.kafka, express_lane_bytes=20_000),
    )
    (big,) = generate_files(tmp_path / "gen", rows=1_000_000, files=1, seed=7, bad_share=0.0)
    (small,) = generate_files(tmp_path / "gen2", rows=50, files=1, seed=8, prefix="small")
    producer = producer_thread(free)
    big.rename(free.paths.inbox / big.name)
    wait_for(lambda: states(db).get(big.name, ("", 0))[0] == "publishing", 30, "bulk publishing")
    small.rename(free.paths.inbox / small.name)
    wait_for(lambda: states(db).get(small.name, ("", 0))[0] == "published", 30, "small file")
    assert states(db)[big.name][0] == "publishing"  # it did not wait for the bulk file
    wait_for(lambda: states(db)[big.name] == ("published", 1_000_000), 120, "the bulk file")
    assert not producer.errors


@pytest.mark.integration
def test_the_stream_end_is_the_furthest_commit_in_each_partition(
    settings: Settings, db: Any
) -> None:
    """A batch records only the partitions it read. The newest bulk batch here read
    partition 1 alone; partitions 0 and 2 are still consumed up to their older batches'
    ends. (Taking the newest batch's ends made them look unread: with nothing trimmed from
    the broker, the producer then waited for a stream that had nothing left to read.)"""
    batches = [
        ("bulk", 1, {"0": 40, "2": 80}),
        ("bulk", 2, {"0": 80}),
        ("bulk", 3, {"1": 59}),
        ("express", 1, {"3": 8}),
    ]
    for checkpoint, batch_id, end in batches:
        db.execute(
            "INSERT INTO stream_batches (checkpoint, batch_id, offsets, rows_in, rows_new,"
            " duration_ms) VALUES (%s, %s, %s, 0, 0, 0)",
            (checkpoint, batch_id, json.dumps({"start": {}, "end": end})),
        )
    assert Ledger(settings.database.url).stream_end_offsets() == {0: 80, 1: 59, 2: 80, 3: 8}


@pytest.mark.integration
def test_records_on_their_way_to_the_broker_count_as_backlog(settings: Settings) -> None:
    """The broker's end offsets miss what the producer has not sent out yet (linger): a
    fresh broker acknowledging slowly once let a 10-chunk file run past a limit of 3."""
    lingering = dataclasses.replace(settings.producer, linger_ms=2000)
    publisher = Publisher(settings.kafka, lingering)
    try:
        before = sum(broker_ends(settings).values())
        publisher.send(41, 2, chunk_of(2, b"r,POINT (1 2),POINT (3 4),2018-05-28 09:03:40,d\n"))
        publisher.send(41, 3, chunk_of(3, b"r,POINT (1 2),POINT (3 4),2018-05-28 09:03:41,d\n"))
        assert publisher.in_flight() == 2  # lingering: not on the broker yet
        assert sum(broker_ends(settings).values()) == before
        publisher.confirm(41)
        assert publisher.in_flight() == 0
        assert sum(broker_ends(settings).values()) == before + 2
    finally:
        publisher.close()
