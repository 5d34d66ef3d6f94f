"""Committed records are deleted from the broker (its memory stays bounded)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streaming.job import make_writer
from streaming.source import OffsetRange, read_range
from streaming.trim import BrokerTrimmer
from tests.conftest import make_settings
from tripstream.records import chunk_headers
from tripstream.settings import Settings

PAYLOAD = b"2,R,POINT (1 2),POINT (3 4),2018-01-01 00:00:00,s,1.0,2.0,3.0,4.0,1514764800\n"


def beginning(settings: Settings) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    tp = TopicPartition(settings.kafka.topic, 0)
    try:
        return int(consumer.beginning_offsets([tp])[tp])
    finally:
        consumer.close()


@pytest.mark.integration
def test_trim_deletes_only_below_the_given_offsets(settings: Settings) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    first = [
        producer.send(
            settings.kafka.topic, value=PAYLOAD, partition=0, headers=chunk_headers(9, 2 + i, 1)
        ).get(10)
        for i in range(6)
    ][0].offset
    producer.close()
    trimmer = BrokerTrimmer(settings.kafka.bootstrap, settings.kafka.topic)
    try:
        trimmer.trim_before({"0": first + 4})
        assert beginning(settings) == first + 4
        trimmer.trim_before({"0": first + 2})  # never moves back
        assert beginning(settings) == first + 4
        assert trimmer.enabled
    finally:
        trimmer.close()
    kept = list(
        read_range(
            [settings.kafka.bootstrap], settings.kafka.topic, OffsetRange(0, first + 4, first + 6)
        )
    )
    assert [b.column("chunk_line")[0].as_py() for b in kept] == [6, 7]


@pytest.mark.integration
def test_a_broker_refusing_to_trim_only_turns_trimming_off(settings: Settings) -> None:
    trimmer = BrokerTrimmer(settings.kafka.bootstrap, "no-such-topic-for-trim")
    try:
        trimmer.trim_before({"0": 5})
    finally:
        trimmer.close()
    assert not trimmer.enabled


def test_the_embedded_tansu_is_never_asked_to_trim(tmp_path: Path) -> None:
    """Tansu 0.6 panics on DeleteRecords (the request's connection drops)."""
    noida = make_settings(tmp_path, "postgresql://t@127.0.0.1:1/t", "127.0.0.1:1", "local[1]", "t")
    tansu = noida.replace(kafka=dataclasses.replace(noida.kafka, embedded_broker="tansu"))
    external = noida.replace(kafka=dataclasses.replace(tansu.kafka, embedded=False))
    assert isinstance(make_writer(noida, tmp_path).trimmer, BrokerTrimmer)
    assert make_writer(tansu, tmp_path).trimmer is None
    assert isinstance(make_writer(external, tmp_path).trimmer, BrokerTrimmer)
