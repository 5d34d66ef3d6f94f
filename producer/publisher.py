"""Publish chunks to Kafka with acks=all; a file counts as sent only when all are acked."""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from tripstream.errors import TransientError
from tripstream.records import chunk_headers
from tripstream.settings import KafkaSettings, ProducerSettings

logger = logging.getLogger(__name__)


class Publisher:
    def __init__(self, kafka: KafkaSettings, producer: ProducerSettings) -> None:
        self.topic = kafka.topic
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=kafka.bootstrap.split(","),
                acks="all",
                compression_type=producer.compression or None,
                linger_ms=producer.linger_ms,
                batch_size=1 << 20,
                max_request_size=16 << 20,
                retries=10,
                max_in_flight_requests_per_connection=5,
                request_timeout_ms=30000,
            )
        except KafkaError as e:
            raise TransientError(
                f"cannot reach Kafka at {kafka.bootstrap}: {e}. Try checking that the broker runs."
            ) from e
        self._pending: list[Any] = []

    def send(self, file_id: int, first_line: int, rows: int, payload: bytes) -> None:
        try:
            self._pending.append(
                self._producer.send(
                    self.topic,
                    key=str(file_id).encode(),
                    value=payload,
                    headers=chunk_headers(file_id, first_line, rows),
                )
            )
        except KafkaError as e:
            raise TransientError(f"publishing to {self.topic} failed: {e}") from e

    def confirm(self) -> dict[int, int]:
        """Flush and wait for every pending ack; {partition: highest offset}. Raises on loss."""
        pending, self._pending = self._pending, []
        self._producer.flush()
        offsets: dict[int, int] = {}
        try:
            for future in pending:
                meta = future.get(timeout=60)
                offsets[meta.partition] = max(offsets.get(meta.partition, -1), meta.offset)
        except KafkaError as e:
            raise TransientError(
                f"the broker did not acknowledge every record: {e}. "
                "The file stays in the inbox and is published again."
            ) from e
        return offsets

    def close(self) -> None:
        self._producer.close(timeout=10)
