"""The Postgres floor: the writer's own SQL (claims, COPY into trip_data, the count upserts,
file progress, the batch ledger) fed pre-decoded batches straight from Python, with no
Kafka and no Spark, on the same data, server and settings as the pipeline. The pipeline's
rate over the floor's tells what the streaming machinery costs above Postgres's own work.

It runs in a database of its own on the same server (`<dbname>_floor`, dropped after), so
the pipeline's tables are untouched. The batches are decoded before the clock starts, into
a Parquet file (100M decoded rows do not fit in memory), and read back batch by batch
(about 0.1 us a row); two threads commit them in parallel, as the two bulk queries do.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq

from producer.chunks import build_chunk
from producer.reader import file_digest, file_id_of, line_blocks
from streaming.task import TaskResult, commit_rows
from streaming.writer import record_batch
from tripstream.db import apply_schema, connect
from tripstream.records import decode_payload, record_key

logger = logging.getLogger(__name__)


def _database_url(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def decoded_chunks(
    path: Path, file_id: int, chunk_rows: int, partition: int = 0, first_offset: int = 0
) -> Iterator[pa.RecordBatch]:
    """A file's chunks as the tasks decode them (ARROW_SCHEMA), at consecutive offsets of
    one partition from `first_offset`; chunks without valid rows are skipped."""
    offset = first_offset
    for first, block in line_blocks(path, chunk_rows, name=path.name):
        chunk = build_chunk(first, block, name=path.name, max_len=100)
        if chunk.rows:
            yield decode_payload(chunk.payload, file_id, first, record_key(partition, offset), 0)
            offset += 1


def predecode(files: list[Path], out: Path, chunk_rows: int, rows_per_batch: int) -> int:
    """The files as the tasks would see them, decoded, into one Parquet file of
    `rows_per_batch`-row groups; registers nothing. Returns the rows written."""
    writer: pq.ParquetWriter | None = None
    pending: list[pa.RecordBatch] = []
    rows = offset = total = 0

    def flush() -> None:
        nonlocal writer, pending, rows
        table = pa.Table.from_batches(pending)
        writer = writer or pq.ParquetWriter(out, table.schema, compression="lz4")
        writer.write_table(table, row_group_size=table.num_rows)
        pending, rows = [], 0

    for path in files:
        for batch in decoded_chunks(path, file_id_of(file_digest(path)), chunk_rows, 0, offset):
            pending.append(batch)
            offset += 1
            rows += batch.num_rows
            total += batch.num_rows
            if rows >= rows_per_batch:
                flush()
    if pending:
        flush()
    if writer is not None:
        writer.close()
    return total


def register_files(url: str, decoded: Path) -> None:
    """The files as the producer leaves them: published, with their valid rows."""
    ids = pq.read_table(decoded, columns=["file_id"]).column("file_id")
    counts = pa.table({"file_id": ids}).group_by("file_id").aggregate([("file_id", "count")])
    conn = connect(url, application="tripstream-floor")
    with conn, conn.cursor() as cur:
        for row in counts.to_pylist():
            cur.execute(
                "INSERT INTO ingest_files (file_id, sha256, name, size_bytes, state, rows_valid)"
                " VALUES (%s, 'floor', 'floor', 0, 'published', %s)",
                (row["file_id"], row["file_id_count"]),
            )
    conn.close()


def measure_floor(
    url: str,
    files: list[Path],
    work: Path,
    *,
    chunk_rows: int = 5000,
    rows_per_batch: int = 100_000,
) -> dict[str, Any]:
    """Rows/s of the writer's SQL alone on these files (two writers in parallel)."""
    decoded = work / "floor.parquet"
    work.mkdir(parents=True, exist_ok=True)
    predecode(files, decoded, chunk_rows, rows_per_batch)
    name = (urlsplit(url).path.lstrip("/") or "postgres") + "_floor"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    floor_url = _database_url(url, name)
    source = pq.ParquetFile(decoded)
    total = source.metadata.num_rows
    try:
        apply_schema(floor_url)
        register_files(floor_url, decoded)
        groups = iter(range(source.num_row_groups))
        lock = threading.Lock()
        errors: list[BaseException] = []

        def writer(lane: int) -> None:
            conn = connect(floor_url, application=f"tripstream-floor-{lane}")
            try:
                while True:
                    with lock:
                        group = next(groups, None)
                        if group is None:
                            return
                        table = source.read_row_group(group)
                    result: TaskResult = commit_rows(conn, table, group)
                    record_batch(floor_url, f"floor-{lane}", group, result, 0)
            except BaseException as e:  # surfaced below
                errors.append(e)
            finally:
                conn.close()

        started = time.monotonic()
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        if errors:
            raise errors[0]
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        decoded.unlink(missing_ok=True)
    logger.info("Postgres floor: %s rows in %.1f s", total, elapsed)
    return {"rows": total, "seconds": round(elapsed, 2), "rows_per_s": round(total / elapsed)}
