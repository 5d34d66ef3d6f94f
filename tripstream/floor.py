"""The Postgres floor: the writer's own SQL (claims, COPY into trip_data, the count upserts,
file progress, the batch ledger) fed pre-decoded batches straight from Python, with no
Kafka and no Spark, on the same data, server and settings as the pipeline. The pipeline's
rate over the floor's tells what the streaming machinery costs above Postgres's own work.

It runs in a database of its own on the same server (`<dbname>_floor`, dropped after), so
the pipeline's tables are untouched. The batches are decoded before the clock starts, into
a Parquet file per source file (100M decoded rows do not fit in memory), and read back
batch by batch (about 0.1 us a row). One thread per bulk query commits them in parallel, in
batches of a bulk query's size. Each trip_data partition the writers are done with is
dropped, so the floor needs no second copy of trip_data on disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pyarrow as pa
import pyarrow.parquet as pq

from producer.chunks import build_chunk
from producer.reader import file_digest, file_id_of, line_blocks
from streaming.task import TaskResult, commit_rows
from streaming.writer import record_batch
from tripstream.db import apply_schema, connect, database_url
from tripstream.records import record_key, rows_batch

logger = logging.getLogger(__name__)
PARTITION_BATCHES = 50  # batch ids per trip_data partition (sql/schema/002_trip_data.sql)


def decoded_chunks(
    path: Path, file_id: int, chunk_rows: int, partition: int = 0, first_offset: int = 0
) -> Iterator[pa.RecordBatch]:
    """A file's chunks as the tasks decode them (ARROW_SCHEMA), at consecutive offsets of
    one partition from `first_offset`; chunks without valid rows are skipped."""
    offset = first_offset
    for first, block in line_blocks(path, chunk_rows, name=path.name):
        chunk = build_chunk(first, block, name=path.name, max_len=100)
        if chunk.rows:
            yield rows_batch(chunk.table, file_id, first, record_key(partition, offset), 0)
            offset += 1


OFFSETS_PER_FILE = 1 << 24  # each file's chunks get offsets of their own range


def predecode_file(
    path: Path, out: Path, chunk_rows: int, rows_per_batch: int, first_offset: int
) -> int:
    """One file as the tasks would see it, decoded, into a Parquet file of
    `rows_per_batch`-row groups; registers nothing. Returns the rows written."""
    writer: pq.ParquetWriter | None = None
    pending: list[pa.RecordBatch] = []
    rows = total = 0

    def flush() -> None:
        nonlocal writer, pending, rows
        table = pa.Table.from_batches(pending)
        writer = writer or pq.ParquetWriter(out, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=table.num_rows)
        pending, rows = [], 0

    for batch in decoded_chunks(path, file_id_of(file_digest(path)), chunk_rows, 0, first_offset):
        pending.append(batch)
        rows += batch.num_rows
        total += batch.num_rows
        if rows >= rows_per_batch:
            flush()
    if pending:
        flush()
    if writer is not None:
        writer.close()
    return total


def predecode(files: list[Path], work: Path, chunk_rows: int, rows_per_batch: int) -> list[Path]:
    """Every file decoded (predecode_file), two at a time: 100M rows take minutes of
    Python. Returns the Parquet files with rows, in the files' order."""
    outs = [work / f"floor-{n:04d}.parquet" for n in range(len(files))]
    with ProcessPoolExecutor(max_workers=2) as pool:
        rows = list(
            pool.map(
                predecode_file,
                files,
                outs,
                [chunk_rows] * len(files),
                [rows_per_batch] * len(files),
                [n * OFFSETS_PER_FILE for n in range(len(files))],
            )
        )
    return [out for out, n in zip(outs, rows, strict=True) if n]


def _drop_finished_partition(conn: psycopg2.extensions.connection, batch_id: int) -> None:
    """Drop the trip_data partition of `batch_id` once no writer can touch it again (the
    groups go out in order, one in flight per thread), as the pipeline's writer never does
    either: 100M rows then need one copy of trip_data on disk, not two. The count tables,
    the ledgers and the newest partitions stay, so the writes see the same sizes."""
    with conn.cursor() as cur:
        cur.execute("SELECT public.trip_data_partition_for(%s)", (batch_id,))
        row = cur.fetchone()
        partition = row[0] if row else "trip_data"
        if partition != "trip_data":
            cur.execute(f'DROP TABLE IF EXISTS public."{partition}"')
    conn.commit()


def _drop_database(admin: psycopg2.extensions.connection, name: str) -> None:
    """DROP DATABASE once the floor's own connections are gone. Without FORCE: that waits
    for (and stops) an autovacuum worker, which FORCE, not being superuser, may not end."""
    for attempt in range(20):
        try:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
            return
        except psycopg2.errors.ObjectInUse:
            if attempt == 19:
                raise
            time.sleep(0.5)


def register_files(url: str, decoded: list[Path]) -> None:
    """The files as the producer leaves them: published, with their valid rows (one source
    file per Parquet file)."""
    counts = []
    for path in decoded:
        source = pq.ParquetFile(path)
        file_id = source.read_row_group(0, columns=["file_id"]).column(0)[0].as_py()
        counts.append({"file_id": file_id, "file_id_count": source.metadata.num_rows})
    conn = connect(url, application="tripstream-floor")
    with conn, conn.cursor() as cur:
        for row in counts:
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
    writers: int = 2,
    decoded_hook: Callable[[], None] | None = None,
    watched: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> dict[str, Any]:
    """Rows/s of the writer's SQL alone on these files (`writers` in parallel); the
    writers run inside `watched()` (e.g. the bench's CPU accounting)."""
    work.mkdir(parents=True, exist_ok=True)
    decoded = predecode(files, work, chunk_rows, rows_per_batch)
    if decoded_hook is not None:
        decoded_hook()  # e.g. the bench frees the disk the source files took
    name = (urlsplit(url).path.lstrip("/") or "postgres") + "_floor"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    floor_url = database_url(url, name)
    sources = [pq.ParquetFile(path) for path in decoded]
    total = sum(source.metadata.num_rows for source in sources)
    try:
        apply_schema(floor_url)
        register_files(floor_url, decoded)
        groups = iter(
            enumerate((source, g) for source in sources for g in range(source.num_row_groups))
        )
        lock = threading.Lock()
        errors: list[BaseException] = []
        dropped: list[int] = []

        def writer(lane: int) -> None:
            conn = connect(floor_url, application=f"tripstream-floor-{lane}")
            try:
                while True:
                    with lock:
                        item = next(groups, None)
                        if item is None:
                            return
                        batch_id, (source, group) = item
                        table = source.read_row_group(group)
                    if batch_id >= 2 * PARTITION_BATCHES and batch_id % PARTITION_BATCHES == 0:
                        _drop_finished_partition(conn, batch_id - 2 * PARTITION_BATCHES)
                        dropped.append(batch_id - 2 * PARTITION_BATCHES)
                    result: TaskResult = commit_rows(conn, table, batch_id)
                    record_batch(floor_url, f"floor-{lane}", batch_id, result, 0)
            except BaseException as e:  # surfaced below
                errors.append(e)
            finally:
                conn.close()

        with watched():
            started = time.monotonic()
            threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
        if errors:
            raise errors[0]
    finally:
        _drop_database(admin, name)
        admin.close()
        for path in decoded:
            path.unlink(missing_ok=True)
    logger.info("Postgres floor: %s rows in %.1f s", total, elapsed)
    return {
        "rows": total,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(total / elapsed),
        "partitions_dropped": len(dropped),
    }
