"""Drop records the stream has committed from the broker (Kafka DeleteRecords).

The embedded noida-db broker keeps every record in memory, so a long run must give
consumed records back. After batch N commits in Postgres, records before batch N's first
offsets are safe to delete: Spark never re-reads before the start of the last batch it
has not committed (at worst it replays batch N itself, whose records are kept), and the
producer re-publishes from the files in done/ whatever never reached Postgres.
Best effort: a broker that cannot delete records (or an error) only costs memory.
"""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import KafkaError

logger = logging.getLogger(__name__)


class BrokerTrimmer:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap.split(","), topic
        self._admin: KafkaAdminClient | None = None
        self._done: dict[str, int] = {}
        self.enabled = True

    def trim_before(self, offsets: dict[str, int]) -> None:
        """Delete every record below offsets[partition] (partition as a string key)."""
        todo = {p: o for p, o in offsets.items() if o > self._done.get(p, 0)}
        if not self.enabled or not todo:
            return
        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap, request_timeout_ms=10000
                )
            self._admin.delete_records(
                {TopicPartition(self.topic, int(p)): o for p, o in todo.items()}
            )
        except (KafkaError, OSError, AttributeError) as e:
            # e.g. a broker without DeleteRecords: stop asking, keep streaming.
            logger.warning(
                "cannot trim committed records from %s (%s); not trying again", self.topic, e
            )
            self.enabled = False
            return
        self._done.update(todo)

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
