"""Publish chunks to Kafka with acks=all; a file counts as sent only when all are acked.

Partitions: the last one is the express lane for small files (read by its own streaming
query, or first by a single one, so a small file does not queue behind a bulk load); the
chunks of a bulk file take the other partitions in turn, so every bulk query
(streaming.bulk_queries) has work while one file is being published. Order does not
matter: a chunk is known by (file id, first line) wherever it lands.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
from kafka import KafkaProducer
from kafka.errors import KafkaError

from tripstream.errors import SetupError, TransientError
from tripstream.kafka_clients import client_options, unreachable
from tripstream.records import PAYLOAD_CODECS, PAYLOAD_SCHEMA, chunk_headers, encode_payload
from tripstream.settings import KafkaSettings, ProducerSettings

logger = logging.getLogger(__name__)


class Publisher:
    def __init__(self, kafka: KafkaSettings, producer: ProducerSettings) -> None:
        self.topic = kafka.topic
        self.codec = producer.compression or "none"
        if self.codec not in PAYLOAD_CODECS:
            raise SetupError(
                f"unknown producer.compression {self.codec!r}. Try: "
                f"TRIPSTREAM_PRODUCER_COMPRESSION={ProducerSettings.compression} (default); "
                f"the codecs are {', '.join(PAYLOAD_CODECS)}."
            )
        try:
            self._producer = KafkaProducer(
                **client_options(kafka),
                acks="all",
                compression_type=None,  # the payload itself is compressed (records.py)
                linger_ms=producer.linger_ms,
                batch_size=1 << 20,
                max_request_size=16 << 20,
                retries=10,
                max_in_flight_requests_per_connection=5,
                request_timeout_ms=30000,
            )
        except KafkaError as e:
            raise unreachable(kafka, e) from e  # nothing listening: transient, else SetupError
        self._pending: dict[int, list[Any]] = {}
        self._partitions: list[int] = []
        self._turn = 0
        self.lanes = kafka.express_lane_bytes > 0

    def warm_up(self) -> None:
        """Fetch the topic's partitions at start (0.1 s) and compress once, not on the
        first file."""
        encode_payload(PAYLOAD_SCHEMA.empty_table(), self.codec)
        if self.lanes:
            try:
                self._topic_partitions()
            except KafkaError as e:  # the first send retries it
                logger.warning("topic %s: no partitions yet (%s)", self.topic, e)

    def _topic_partitions(self) -> list[int]:
        if not self._partitions:
            self._partitions = sorted(self._producer.partitions_for(self.topic) or [])
        return self._partitions

    def _partition(self, file_id: int, express: bool) -> int | None:
        if not self.lanes:
            return None  # the key (file id) picks the partition
        partitions = self._topic_partitions()
        if not express:
            self._turn += 1
        return lane_partition(file_id + self._turn, partitions, express)

    def send(self, file_id: int, first_line: int, rows: pa.Table, *, express: bool = False) -> None:
        try:
            future = self._producer.send(
                self.topic,
                key=str(file_id).encode(),
                value=encode_payload(rows, self.codec),
                headers=chunk_headers(file_id, first_line, rows.num_rows),
                partition=self._partition(file_id, express),
            )
        except KafkaError as e:
            raise TransientError(f"publishing to {self.topic} failed: {e}") from e
        self._pending.setdefault(file_id, []).append(future)

    def in_flight(self) -> int:
        """Records sent and not acknowledged yet: the broker's end offsets do not count
        them, and a backlog measured without them lets a burst of small chunks run past
        the limit."""
        return sum(1 for futures in self._pending.values() for f in futures if not f.is_done)

    def confirm(self, file_id: int) -> dict[int, int]:
        """Flush and wait for every pending ack of one file; {partition: highest offset}.
        Raises on loss."""
        pending = self._pending.pop(file_id, [])
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


def lane_partition(turn: int, partitions: list[int], express: bool) -> int | None:
    """The express lane is the last partition; bulk chunks go to the others, by `turn`."""
    if len(partitions) < 2:
        return partitions[0] if partitions else None
    if express:
        return partitions[-1]
    return partitions[turn % (len(partitions) - 1)]
