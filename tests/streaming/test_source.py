"""Kafka source: offset arithmetic (pure) and exact range reads from the real broker."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

from streaming.source import (
    OffsetRange,
    TripKafkaStreamReader,
    cap_offsets,
    read_range,
    split_ranges,
)
from tripstream.records import chunk_headers
from tripstream.settings import Settings


def test_split_ranges_cover_exactly_and_spread() -> None:
    ranges = split_ranges({"0": 10, "1": 5}, {"0": 30, "1": 5}, 4)
    assert len(ranges) == 4
    covered = sorted(o for r in ranges for o in range(r.start, r.end))
    assert covered == list(range(10, 30))
    assert all(r.partition == 0 for r in ranges)


def test_split_ranges_empty_when_nothing_new() -> None:
    assert split_ranges({"0": 3}, {"0": 3}, 2) == []
    assert split_ranges({"0": 9}, {"0": 3}, 2) == []  # broker end fell below our position


def test_cap_offsets_shares_the_budget() -> None:
    assert cap_offsets({"0": 0, "1": 0}, {"0": 100, "1": 3}, 10) == {"0": 7, "1": 3}
    assert cap_offsets({"0": 5}, {"0": 6}, 10) == {"0": 6}
    assert sum(cap_offsets({"0": 0, "1": 0, "2": 0}, {"0": 9, "1": 9, "2": 9}, 10).values()) == 10


def test_cap_offsets_serves_the_express_lane_first() -> None:
    start, end = {"0": 0, "1": 0, "2": 0}, {"0": 100, "1": 100, "2": 3}
    assert cap_offsets(start, end, 10, first="2") == {"0": 4, "1": 3, "2": 3}
    assert cap_offsets(start, {"0": 100, "1": 100, "2": 30}, 10, first="2") == {
        "0": 0,
        "1": 0,
        "2": 10,
    }
    assert cap_offsets(start, end, 10) == {"0": 4, "1": 3, "2": 3}  # fair share without it


def test_options_arrive_lower_cased_and_still_apply() -> None:
    reader = TripKafkaStreamReader(
        {"bootstrap": "h:1", "topic": "t", "maxrecordspertrigger": "40", "minpartitions": "2"}
    )
    assert reader.getDefaultReadLimit() == ReadMaxRows(40)
    assert reader.min_partitions == 2
    reader._ends = lambda start, force=False: {"0": 40, "1": 40, "2": 0, "3": 71}  # type: ignore[method-assign,misc]
    start = {"0": 0, "1": 0, "2": 0, "3": 0}
    assert sum(reader.latestOffset(start, ReadMaxRows(40)).values()) == 40
    # a processing-time trigger stays bounded even if the engine says ReadAllAvailable
    assert sum(reader.latestOffset(start, ReadAllAvailable()).values()) == 40


@pytest.mark.integration
def test_read_range_yields_exactly_the_requested_records(settings: Settings) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    payload = b"2,R,POINT (1 2),POINT (3 4),2018-01-01 00:00:00,s,1.0,2.0,3.0,4.0,1514764800\n"
    metas = [
        producer.send(
            settings.kafka.topic, value=payload, partition=0, headers=chunk_headers(77, 2 + i, 1)
        ).get(10)
        for i in range(6)
    ]
    producer.close()
    first = metas[0].offset
    batches = list(
        read_range(
            [settings.kafka.bootstrap], settings.kafka.topic, OffsetRange(0, first + 1, first + 4)
        )
    )
    assert [b.column("chunk_line")[0].as_py() for b in batches] == [3, 4, 5]
    again = list(
        read_range(
            [settings.kafka.bootstrap], settings.kafka.topic, OffsetRange(0, first + 1, first + 4)
        )
    )
    assert [b.to_pylist() for b in again] == [b.to_pylist() for b in batches]
