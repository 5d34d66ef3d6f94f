"""A Kafka source for Spark Structured Streaming on PySpark's Python Data Source API.

Spark's JVM Kafka connector cannot be installed here, so this reads Kafka with kafka-python:
- offsets are plain dicts {"<partition>": <next offset>}, JSON-able and checkpointed by Spark;
- `partitions(start, end)` cuts exact offset ranges (split so that every executor works);
- `read(range)` runs on an executor, opens its own consumer, `assign` + `seek`, and yields
  one Arrow row per Kafka record (a chunk of rows, decoded by the writer: records.py):
  replaying a range gives the same records;
- `latestOffset(start, limit)` honours ReadMaxRows, whose unit here is Kafka records
  (option maxRecordsPerTrigger), and Trigger.AvailableNow via SupportsTriggerAvailableNow.
End offsets are probed, not trusted (Tansu under-reports them: tripstream/offsets.py).
A broker that lost acknowledged records (its end offset went below our position) is
logged and skipped over; the producer's reconciler re-publishes what never reached
Postgres, so nothing is lost end to end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)

from tripstream.offsets import holds, probe_consumer, probe_ends, topic_partitions
from tripstream.records import RECORD_SCHEMA, record

logger = logging.getLogger(__name__)
# A busy broker may answer slowly; only this long without records fails the task.
READ_STALL_S = 120.0
GONE_CHECK_S = 10.0
# An empty end-offset probe costs about 35 ms of CPU (tripstream/offsets.py); at the express
# lane's 0.1 s trigger, probing every time kept a third of a core busy on an idle stack.
# So the reader probes when the last probe found records past the reported ends (Tansu,
# or records arriving), when a reported end is below its position, and else once a second.
PROBE_INTERVAL_S = 1.0
Offsets = dict[str, int]


@dataclass
class OffsetRange(InputPartition):
    partition: int
    start: int
    end: int

    def __init__(self, partition: int, start: int, end: int) -> None:
        super().__init__((partition, start, end))
        self.partition, self.start, self.end = partition, start, end


def split_ranges(start: Offsets, end: Offsets, min_pieces: int) -> list[OffsetRange]:
    """Exact ranges per partition; the largest split until there are min_pieces."""
    ranges = [
        OffsetRange(int(p), start.get(p, 0), e)
        for p, e in sorted(end.items())
        if e > start.get(p, 0)
    ]
    while ranges and len(ranges) < min_pieces:
        widest = max(ranges, key=lambda r: r.end - r.start)
        if widest.end - widest.start < 2:
            break
        middle = (widest.start + widest.end) // 2
        ranges.remove(widest)
        ranges += [
            OffsetRange(widest.partition, widest.start, middle),
            OffsetRange(widest.partition, middle, widest.end),
        ]
    return sorted(ranges, key=lambda r: (r.partition, r.start))


def cap_offsets(
    start: Offsets, end: Offsets, max_records: int, first: str | None = None
) -> Offsets:
    """Advance at most max_records records in total: partition `first` (the express lane)
    takes what it has first, the rest is shared fairly between the other partitions."""
    capped = dict(start)
    budget = max_records
    waiting = {p: e - start.get(p, 0) for p, e in end.items() if e > start.get(p, 0)}
    if first in waiting:
        take = min(waiting.pop(first), budget)
        capped[first] = capped.get(first, 0) + take
        budget -= take
    while budget > 0 and waiting:
        share = max(budget // len(waiting), 1)
        for p in sorted(waiting):
            take = min(share, waiting[p], budget)
            capped[p] = capped.get(p, 0) + take
            waiting[p] -= take
            budget -= take
            if budget == 0:
                break
        waiting = {p: n for p, n in waiting.items() if n > 0}
    for p, e in end.items():
        capped.setdefault(p, e)
    return capped


class TripKafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options: dict[str, str]) -> None:
        # Spark hands options over with lower-cased keys: look them up case-insensitively.
        opts = {str(k).lower(): str(v) for k, v in options.items()}
        self.bootstrap = opts["bootstrap"].split(",")
        self.topic = opts["topic"]
        self.max_records = int(opts.get("maxrecordspertrigger", "0"))
        self.min_partitions = int(opts.get("minpartitions", "1"))
        self.express_lane = opts.get("expresslane", "false") == "true"
        # A subset of the topic's partitions ("0,1,2"): one query per lane. Empty: all.
        self.only = {int(p) for p in opts.get("partitions", "").split(",") if p.strip()}
        self._consumer: KafkaConsumer | None = None
        self._probe: KafkaConsumer | None = None
        self._target: Offsets | None = None
        self._probe_found = False
        self._next_probe = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_consumer"] = state["_probe"] = None
        return state

    def _client(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap, enable_auto_commit=False, request_timeout_ms=30000
            )
        return self._consumer

    def _partitions(self) -> list[TopicPartition]:
        parts = topic_partitions(self._client(), self.topic)
        if not self.only <= set(parts):
            raise RuntimeError(
                f"topic {self.topic!r} has partitions {parts}, not {sorted(self.only)}"
            )
        return [TopicPartition(self.topic, p) for p in sorted(self.only or parts)]

    def _ends(self, start: Offsets, *, force: bool = False) -> Offsets:
        """End offsets as reported, probed past any records the report missed when due."""
        tps = self._partitions()
        reported = self._client().end_offsets(tps)
        floor = {tp: start.get(str(tp.partition), 0) for tp in tps}
        ends = reported
        if (
            force
            or self._probe_found
            or time.monotonic() >= self._next_probe
            or any(reported[tp] < floor[tp] for tp in tps)
        ):
            if self._probe is None:
                self._probe = probe_consumer(self.bootstrap)
            ends = probe_ends(self._probe, reported, floor)
            self._probe_found = any(ends[tp] > reported[tp] for tp in tps)
            self._next_probe = time.monotonic() + PROBE_INTERVAL_S
        return {str(tp.partition): int(off) for tp, off in ends.items()}

    def initialOffset(self) -> Offsets:  # noqa: N802 - Spark's API
        begins = self._client().beginning_offsets(self._partitions())
        return {str(tp.partition): int(off) for tp, off in begins.items()}

    def getDefaultReadLimit(self) -> ReadLimit:  # noqa: N802
        return ReadMaxRows(self.max_records) if self.max_records > 0 else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:  # noqa: N802
        self._target = self._ends({}, force=True)

    def latestOffset(self, start: Offsets, limit: ReadLimit) -> Offsets:  # noqa: N802
        max_records = limit.max_rows if isinstance(limit, ReadMaxRows) else 0
        if max_records <= 0 and self._target is None:
            # A processing-time trigger: keep batches bounded even if the engine passes
            # ReadAllAvailable (as it can on the first batch after a restart).
            max_records = self.max_records
        ends = self._target if self._target is not None else self._ends(start)
        for p, end in ends.items():
            if end < start.get(p, 0):
                logger.warning(
                    "partition %s: broker end offset %s is below our position %s; "
                    "the broker lost records. Resuming from %s; the producer "
                    "re-publishes what never reached Postgres.",
                    p,
                    end,
                    start[p],
                    end,
                )
        base = {p: min(start.get(p, 0), end) for p, end in ends.items()}
        if max_records > 0:
            first = max(ends, key=int) if self.express_lane and len(ends) > 1 else None
            return cap_offsets(base, ends, max_records, first)
        return dict(ends)

    def partitions(self, start: Offsets, end: Offsets) -> Sequence[InputPartition]:
        return split_ranges(start, end, self.min_partitions)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, OffsetRange)  # noqa: S101 - Spark hands back our own type
        yield from read_range(self.bootstrap, self.topic, partition)

    def commit(self, end: Offsets) -> None:
        """Nothing to do: offsets live in Spark's checkpoint, progress in Postgres."""


def read_range(bootstrap: list[str], topic: str, rng: OffsetRange) -> Iterator[pa.RecordBatch]:
    """Yield the records in [rng.start, rng.end) of one partition as Arrow batches."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=16 << 20,
        # noida-db can answer a fetch with far more than fetch_max_bytes when the backlog is
        # large (116-164 MB seen under a 10M-row load); accept such frames instead of failing.
        receive_message_max_bytes=512 << 20,
    )
    tp = TopicPartition(topic, rng.partition)
    probe: KafkaConsumer | None = None
    try:
        consumer.assign([tp])
        consumer.seek(tp, rng.start)
        position, last_progress = rng.start, time.monotonic()
        while position < rng.end:
            records = consumer.poll(timeout_ms=500).get(tp, [])
            for msg in records:
                if msg.offset >= rng.end:
                    return
                position = msg.offset + 1
                if msg.value:
                    yield record(msg.value, msg.headers, rng.partition, msg.offset, msg.timestamp)
            if records:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > GONE_CHECK_S:
                # Were the records lost by the broker? Ask for them, not for the end offset
                # (which Tansu under-reports).
                try:
                    probe = probe or probe_consumer(bootstrap)
                    gone = not holds(probe, tp, position)
                except KafkaError as e:  # slow broker: keep waiting, up to READ_STALL_S
                    logger.warning("partition %s: cannot probe offset (%s)", rng.partition, e)
                    gone = False
                if gone:
                    logger.warning(
                        "partition %s: records %s..%s are gone from the broker; "
                        "skipped (the producer re-publishes them)",
                        rng.partition,
                        position,
                        rng.end,
                    )
                    return
                if time.monotonic() - last_progress > READ_STALL_S:
                    raise TimeoutError(
                        f"no records from {topic}/{rng.partition} at offset "
                        f"{position} for {READ_STALL_S:.0f}s"
                    )
    finally:
        consumer.close()
        if probe is not None:
            probe.close()


class TripKafkaDataSource(DataSource):
    """`spark.readStream.format("tripkafka").option("bootstrap", ...).option("topic", ...)`."""

    format_name = "tripkafka"

    @classmethod
    def name(cls) -> str:
        return cls.format_name

    def schema(self) -> str:
        return RECORD_SCHEMA

    def streamReader(self, schema: Any) -> DataSourceStreamReader:  # noqa: N802
        return TripKafkaStreamReader(dict(self.options))


def lane_source(lane: str) -> type[TripKafkaDataSource]:
    """The source under its own format name for one lane's query ("tripkafka_express").

    Spark gives every query of a registered Python data source the same environment map
    (UserDefinedPythonDataSource.createPythonFunction reuses the registered function's
    envVars) and writes into it when a streaming query starts
    (PythonStreamingSourceRunner.init). With two queries on one registration, one query
    starting while the other serialises its tasks tore that map: executors failed with
    java.io.OptionalDataException on every retry and restart. A registration per lane gives
    each query a map of its own."""
    name = "tripkafka_" + lane.replace("-", "_")
    return type(f"TripKafkaDataSource_{name}", (TripKafkaDataSource,), {"format_name": name})
