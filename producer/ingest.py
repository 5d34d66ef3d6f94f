"""One file through the producer: identify, validate, publish, confirm, then move it."""

from __future__ import annotations

import csv
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from producer.chunks import build_chunk
from producer.ledger import Ledger
from producer.publisher import Publisher
from producer.reader import file_digest, file_id_of, line_blocks
from tripstream.errors import FileRejectedError, RowError, TransientError
from tripstream.kafka_clients import consumer
from tripstream.settings import Settings

logger = logging.getLogger(__name__)
PROGRESS_EVERY_S = 5.0
BACKLOG_WAIT_S = 0.5  # while held back, how often to look at the backlog again
MAKE_WAY_EVERY_S = 0.2  # while publishing a bulk file, how often small files may pass


def unique_target(folder: Path, name: str, tag: str) -> Path:
    target = folder / name
    if not target.exists():
        return target
    stem, dot, suffix = name.partition(".")
    return folder / f"{stem}-{tag}{dot}{suffix}"


class Ingester:
    def __init__(self, settings: Settings, ledger: Ledger, publisher: Publisher) -> None:
        self.settings, self.ledger, self.publisher = settings, ledger, publisher
        self.paths = settings.paths
        self._consumer: KafkaConsumer | None = None
        self._backlog_estimate: int | None = None
        # Lets small files jump the queue: called while a bulk file is held back, and
        # every MAKE_WAY_EVERY_S while one is being published.
        self.make_way: Callable[[], None] | None = None
        self.stop = threading.Event()  # set by the service on shutdown: stop waiting

    def is_express(self, size: int) -> bool:
        """Small files take the express lane and are never held back."""
        return size <= self.settings.kafka.express_lane_bytes and self.publisher.lanes

    def ingest(self, path: Path) -> str:
        """Ingest one ready file; returns the outcome. TransientError leaves it in the inbox."""
        try:
            size, sha256 = path.stat().st_size, file_digest(path)
        except FileNotFoundError:
            return "vanished"
        file_id = file_id_of(sha256)
        known = self.ledger.register(file_id, sha256, path.name, size)
        if known.state in ("published", "committed"):
            target = self._move(path, self.paths.done, sha256[:8])
            logger.info(
                "%s: same content as file %s (%s); nothing published, moved to %s",
                path.name,
                file_id,
                known.state,
                target,
            )
            return "duplicate"
        if known.state == "rejected":
            self._reject(path, file_id, sha256, "the same content was rejected before")
            return "rejected"
        try:
            return self._publish(path, file_id, sha256, known.chunk_rows, self.is_express(size))
        except FileRejectedError as e:
            self._reject(path, file_id, sha256, str(e))
            return "rejected"

    def _publish(
        self, path: Path, file_id: int, sha256: str, chunk_rows: int | None, express: bool
    ) -> str:
        chunk_rows = chunk_rows or self.settings.producer.chunk_rows
        self.ledger.publishing(file_id, chunk_rows)
        target = unique_target(self.paths.done, path.name, sha256[:8])
        qfile = target.with_name(target.name + ".quarantine.csv")
        started = last_log = last_way = time.monotonic()
        valid = rejected = chunks = 0
        with _QuarantineFile(qfile) as quarantine:
            for first, block in line_blocks(path, chunk_rows, name=path.name):
                chunk = build_chunk(
                    first, block, name=path.name, max_len=self.settings.producer.max_field_length
                )
                if chunk.rows:
                    if not express:
                        if (
                            self.make_way is not None
                            and time.monotonic() - last_way >= MAKE_WAY_EVERY_S
                        ):
                            self.make_way()
                            last_way = time.monotonic()
                        self.wait_for_room()
                    self.publisher.send(file_id, first, chunk.table, express=express)
                    chunks += 1
                valid += chunk.rows
                rejected += len(chunk.errors)
                self.ledger.quarantine(file_id, path.name, chunk.errors, chunk.raw_errors)
                quarantine.write(chunk.errors, chunk.raw_errors)
                now = time.monotonic()
                if now - last_log >= PROGRESS_EVERY_S:
                    self.ledger.progress(file_id, valid)
                    logger.info(
                        "%s: %s rows read, %.0f rows/s",
                        path.name,
                        valid + rejected,
                        (valid + rejected) / (now - started),
                    )
                    last_log = now
            offsets = self.publisher.confirm(file_id)
            if rejected:
                quarantine.keep()
        self.ledger.published(
            file_id,
            total=valid + rejected,
            valid=valid,
            rejected=rejected,
            chunks=chunks,
            stored_path=str(target),
            offsets=offsets,
        )
        self._move(path, self.paths.done, sha256[:8], target)
        elapsed = time.monotonic() - started
        logger.info(
            "%s: published %s rows in %s chunks, quarantined %s, %.0f rows/s, file %s",
            path.name,
            valid,
            chunks,
            rejected,
            (valid + rejected) / max(elapsed, 1e-6),
            file_id,
        )
        return "published"

    def reject_unsupported(self, path: Path) -> None:
        """A file that is not *.csv or *.csv.gz: rejected with a report, never read as data."""
        try:
            size, sha256 = path.stat().st_size, file_digest(path)
        except FileNotFoundError:
            return
        file_id = file_id_of(sha256)
        self.ledger.register(file_id, sha256, path.name, size)
        self._reject(
            path,
            file_id,
            sha256,
            f"{path.name}: not a .csv or .csv.gz file. Try "
            "renaming it to *.csv if it is a trip CSV, or keep it out of the inbox",
        )

    def _reject(self, path: Path, file_id: int, sha256: str, reason: str) -> None:
        target = self._move(path, self.paths.rejected, sha256[:8])
        report = target.with_name(target.name + ".report.txt")
        report.write_text(
            f"file: {path.name}\nsha256: {sha256}\nrejected: {reason}\n", encoding="utf-8"
        )
        self.ledger.rejected(file_id, reason, str(target))
        logger.warning("%s rejected: %s (moved to %s)", path.name, reason, target)

    def _move(self, path: Path, folder: Path, tag: str, target: Path | None = None) -> Path:
        target = target or unique_target(folder, path.name, tag)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
        except OSError as e:
            raise TransientError(
                f"cannot move {path} to {target}: {e.strerror}. The file stays in the inbox; "
                f"try freeing disk space or fixing permissions on {folder}."
            ) from e
        return target

    # -- backpressure: never run more than max_backlog_records ahead of the stream ---------
    def backlog(self) -> int:
        """Records sent that no committed micro-batch has consumed yet: those on the broker,
        and those still on their way to it."""
        in_flight = self.publisher.in_flight()
        stream_end = self.ledger.stream_end_offsets()
        ends, begins = self._broker_offsets()
        return in_flight + sum(
            max(0, end - max(stream_end.get(p, 0), begins.get(p, 0))) for p, end in ends.items()
        )

    def wait_for_room(self) -> None:
        """Called before each record is sent. Asks the broker and Postgres only when the
        backlog seen last, plus the records sent since, may have reached the limit."""
        limit = self.settings.producer.max_backlog_records
        if limit <= 0:
            return
        if self._backlog_estimate is not None and self._backlog_estimate < limit:
            self._backlog_estimate += 1
            return
        waited_since: float | None = None
        while (backlog := self.backlog()) >= limit:
            if waited_since is None:
                waited_since = time.monotonic()
                logger.info(
                    "backlog %s records >= %s: waiting for the stream to catch up", backlog, limit
                )
            if self.make_way is not None:
                self.make_way()
            if self.stop.wait(BACKLOG_WAIT_S):
                raise TransientError("shutting down while held back; the file stays in the inbox")
        if waited_since is not None:
            logger.info(
                "backlog %s records: publishing again after %.1f s",
                backlog,
                time.monotonic() - waited_since,
            )
        self._backlog_estimate = backlog + 1

    # -- reconciliation: chunks the broker acknowledged but Postgres never saw ------------
    def reconcile(self) -> int:
        """Re-publish missing chunks of stale files whose records the stream passed or the
        broker no longer holds (a guard: Apache Kafka with acks=all keeps what it
        acknowledged, so this finds nothing unless records expired unread or a broker lost
        its disk). Returns the number of chunks re-published."""
        stale = self.ledger.stale(self.settings.producer.reconcile_after_seconds)
        if not stale:
            return 0
        stream_end = self.ledger.stream_end_offsets()
        broker_end, _ = self._broker_offsets()
        sent = 0
        for file_id, stored, chunk_rows, last in stale:
            lost = any(
                stream_end.get(int(p), -1) > off or broker_end.get(int(p), 0) <= off
                for p, off in last.items()
            )
            if lost:
                sent += self._republish(file_id, Path(stored), chunk_rows)
        return sent

    def _republish(self, file_id: int, path: Path, chunk_rows: int) -> int:
        done = self.ledger.committed_chunks(file_id)
        express = self.is_express(path.stat().st_size)
        sent = 0
        for first, block in line_blocks(path, chunk_rows, name=path.name):
            if first in done:
                continue
            chunk = build_chunk(
                first, block, name=path.name, max_len=self.settings.producer.max_field_length
            )
            if chunk.rows:
                self.publisher.send(file_id, first, chunk.table, express=express)
                sent += 1
        offsets = self.publisher.confirm(file_id)
        self.ledger.republished(file_id, offsets)
        logger.warning("%s: re-published %s chunks that never reached Postgres", path.name, sent)
        return sent

    def _broker_offsets(self) -> tuple[dict[int, int], dict[int, int]]:
        """(end offsets, beginning offsets) per partition of the topic."""
        kafka = self.settings.kafka
        try:
            if self._consumer is None:
                self._consumer = consumer(kafka)
            parts = self._consumer.partitions_for_topic(kafka.topic) or set()
            tps = [TopicPartition(kafka.topic, p) for p in parts]
            ends = self._consumer.end_offsets(tps)
            begins = self._consumer.beginning_offsets(tps)
        except KafkaError as e:
            raise TransientError(f"cannot read broker offsets: {e}") from e
        return (
            {tp.partition: int(off) for tp, off in ends.items()},
            {tp.partition: int(off) for tp, off in begins.items()},
        )

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


class _QuarantineFile:
    """Bad rows of a file as CSV (line, reason, raw) next to it, written as they come."""

    def __init__(self, path: Path) -> None:
        self.path, self.part = path, path.with_name(path.name + ".part")
        self._kept = False
        self._file: TextIO | None = None

    def __enter__(self) -> _QuarantineFile:
        return self

    def _open(self) -> Any:
        """Opened on the first bad row only: a clean file needs no sidecar."""
        if self._file is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.part.open("w", encoding="utf-8", newline="")
            except OSError as e:
                raise TransientError(
                    f"cannot write {self.part}: {e.strerror}. The file stays in the inbox; "
                    "try freeing disk space or fixing permissions."
                ) from e
            self._csv = csv.writer(self._file)
            self._csv.writerow(["line", "reason", "raw_line"])
        return self._csv

    def write(self, errors: list[RowError], raws: list[bytes]) -> None:
        if not errors:
            return
        writer = self._open()
        for e, raw in zip(errors, raws, strict=True):
            text = raw.decode("utf-8", "replace").replace("\x00", "\\0")
            writer.writerow([e.line, f"{e.reason}. Try {e.fix}", text.rstrip("\r\n")[:2000]])

    def keep(self) -> None:
        self._kept = True

    def __exit__(self, *exc: object) -> None:
        if self._file is None:
            return
        self._file.close()
        if self._kept and exc[0] is None:
            os.replace(self.part, self.path)
        else:
            self.part.unlink(missing_ok=True)
