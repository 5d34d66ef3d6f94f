"""The publisher: an unknown payload codec is refused at start, naming the setting; chunks
are spread over the lanes' partitions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from producer.chunks import build_chunk
from producer.publisher import Publisher
from tripstream.errors import SetupError
from tripstream.settings import Settings, load_settings
from tripstream.stack.broker import ensure_topic

ROW = build_chunk(
    2, b"r,POINT (1 2),POINT (3 4),2018-05-28 09:03:40,d\n", name="p.csv", max_len=100
).table


def test_an_unknown_compression_setting_stops_the_producer_at_start() -> None:
    settings = load_settings()
    producer = replace(settings.producer, compression="snappy")
    with pytest.raises(SetupError, match="TRIPSTREAM_PRODUCER_COMPRESSION=lz4"):
        Publisher(settings.kafka, producer)  # refused before any connection is tried


@pytest.mark.integration
def test_a_bulk_files_chunks_take_the_bulk_partitions_in_turn(settings: Settings) -> None:
    """So every bulk query has work while one file is published; small files keep to the
    express partition (the last)."""
    kafka = replace(settings.kafka, topic=f"{settings.kafka.topic}-spread", express_lane_bytes=1000)
    ensure_topic(kafka, 3)
    publisher = Publisher(kafka, settings.producer)
    try:
        for first in range(1, 5):
            publisher.send(11, first, ROW)
        bulk = publisher.confirm(11)
        publisher.send(12, 1, ROW, express=True)
        express = publisher.confirm(12)
    finally:
        publisher.close()
    assert bulk == {0: 1, 1: 1}  # two chunks each: offsets 0 and 1 in partitions 0 and 1
    assert express == {2: 0}
