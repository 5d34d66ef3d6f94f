"""The work of one Spark task, on its executor: decode its Kafka records and commit their
rows in one Postgres transaction of its own.

    1. (own short transaction) make the batch's trip_data partition ready;
    2. claim the task's chunks in `ingested_chunks` (file id, first line): only chunks never
       committed before come back, so a re-run task, a replayed batch or a second attempt
       running at the same time writes nothing twice (the second attempt waits on the
       first's uncommitted keys, then finds them taken);
    3. COPY the claimed chunks' rows into trip_data;
    4. add their counts to the live count tables (keys in one fixed order: concurrent tasks
       wait for each other, never deadlock);
    5. add them to their files' progress; commit.

The task returns one small JSON row (rows, offsets, files, timings) for the driver, which
records the batch (streaming/writer.py). No row of the batch passes through the driver.

Each Python worker keeps one Postgres connection (application_name
`tripstream-executor-<pid>`), reused by every task it runs, so the connections are bounded by
the executors' cores; it is closed when the worker shuts down.
"""

from __future__ import annotations

import atexit
import functools
import io
import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pgpq
import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pyarrow as pa
import pyarrow.compute as pc

from streaming.counts import (
    ADDED_COLUMNS,
    FINE_CELLS_PER_DEGREE,
    SUBSCRIPT_COLUMNS,
    aggregates,
    cell,
)
from tripstream import SQL_DIR, records
from tripstream.db import connect, retry
from tripstream.records import RECORD_KEY_PARTITION_SHIFT, decode_records

logger = logging.getLogger(__name__)
OFFSET_MASK = (1 << RECORD_KEY_PARTITION_SHIFT) - 1
RESULT_SCHEMA = "result string"
# Fault injection (tests only), read on the executor. KILL_TASK: the task's Python worker
# dies right after its commit in batch N. KILL_DRIVER: in batch N, the first task kills the
# driver right after its commit; the batch's other tasks wait first, so they commit (if
# ever) after the driver is gone.
KILL_TASK_AFTER_COMMIT_ENV = "TRIPSTREAM_FAULT_KILL_TASK_AFTER_COMMIT"
KILL_DRIVER_AFTER_COMMIT_ENV = "TRIPSTREAM_FAULT_KILL_DRIVER_AFTER_TASK_COMMIT"
FAULT_ENVS = (KILL_TASK_AFTER_COMMIT_ENV, KILL_DRIVER_AFTER_COMMIT_ENV)

# The staging table's columns: the chunk's seed and typed columns, then the row identity.
TRIP_COLUMNS = (
    *(c for c in records.COLUMNS if c not in ("line_no", "ts")),
    "file_id",
    "line_no",
    "batch_id",
)
COUNT_COLUMNS = {
    "region_hour": ("region", "hour_start", "trips"),
    "datasource_day": ("datasource", "day", "trips"),
    "similar": ("similar_key", "trips"),
    "area_week_cells": (
        "cx",
        "cy",
        "week_start",
        "trips",
        *SUBSCRIPT_COLUMNS,
        *ADDED_COLUMNS,
        "fine",
    ),
    "region_datasource": ("region", "datasource", "trips", "latest"),
}


@dataclass
class TaskResult:
    """What a task tells the driver: small, whatever the batch size."""

    rows_in: int = 0
    rows_new: int = 0
    start: dict[str, int] = field(default_factory=dict)  # partition -> first offset
    end: dict[str, int] = field(default_factory=dict)  # partition -> last offset + 1
    oldest_ms: int = 0  # the oldest record's Kafka timestamp
    files: list[dict[str, Any]] = field(default_factory=list)
    decode_ms: int = 0
    copy_ms: int = 0
    counts_ms: int = 0
    pid: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TaskResult:
        return cls(**json.loads(text))


@functools.cache
def writer_sql(name: str) -> str:
    """sql/writer/<name>.sql, read once."""
    return (SQL_DIR / "writer" / f"{name}.sql").read_text(encoding="utf-8")


# -- one connection per Python worker ---------------------------------------------------
_connections: dict[str, psycopg2.extensions.connection] = {}


def _close_all() -> None:
    for conn in _connections.values():
        if not conn.closed:
            conn.close()
    _connections.clear()


def _on_hangup(signum: int, frame: Any) -> None:
    """PySpark's daemon stops its workers with SIGHUP: close the connection, then die."""
    _close_all()
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGHUP)


def worker_connection(url: str) -> psycopg2.extensions.connection:
    conn = _connections.get(url)
    if conn is None or conn.closed:
        conn = connect(url, application=f"tripstream-executor-{os.getpid()}")
        if not _connections:
            atexit.register(_close_all)
            signal.signal(signal.SIGHUP, _on_hangup)
        _connections[url] = conn
    return conn


# -- the rows of a task ------------------------------------------------------------------
class _Chunks(io.RawIOBase):
    """A read-only file over an iterator of byte strings, for copy_expert."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces, self._left = pieces, b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._left:  # an encoder may hand back b"" and keep the rows for later
            piece = next(self._pieces, None)
            if piece is None:
                return b""
            self._left = piece
        if size < 0:
            size = len(self._left)
        piece, self._left = self._left[:size], self._left[size:]
        return piece


COPY_ENCODE_ROWS = 16_384  # rows encoded at a time: the COPY never holds a batch's bytes


def _copy(
    cur: psycopg2.extensions.cursor, table: pa.Table, target: str, columns: tuple[str, ...]
) -> None:
    """COPY in PostgreSQL's binary format (pgpq): no number or timestamp is printed as text
    and parsed back. Arrow types must match the target columns (int32 = integer, ...).
    The rows are encoded a slice at a time as Postgres reads them."""
    selected = table.select(list(columns))
    encoder = pgpq.ArrowToPostgresBinaryEncoder(selected.schema)

    def pieces() -> Iterator[bytes]:
        yield encoder.write_header()
        for batch in selected.to_batches(max_chunksize=COPY_ENCODE_ROWS):
            yield encoder.write_batch(batch)
        yield encoder.finish()

    cur.copy_expert(
        f"COPY {target} ({', '.join(columns)}) FROM STDIN WITH (FORMAT binary)",
        _Chunks(pieces()),
        size=1 << 20,
    )


def in_cell_order(rows: pa.Table) -> pa.Table:
    """The rows sorted by trip_data's fine-cell index key: COPY then inserts the index
    entries in key order, each leaf page touched once per batch instead of once per row
    (the COPY took a third less time on 3M rows). Row identity is (file id, line), not the
    position, so the order is free."""
    keys = pa.table(
        {
            "cx": cell(rows.column("origin_lon"), FINE_CELLS_PER_DEGREE),
            "cy": cell(rows.column("origin_lat"), FINE_CELLS_PER_DEGREE),
        }
    )
    order = pc.sort_indices(keys, sort_keys=[("cx", "ascending"), ("cy", "ascending")])
    return rows.take(order)


def offsets_of(table: pa.Table) -> tuple[dict[str, int], dict[str, int]]:
    """({p: first offset}, {p: last offset + 1}) of the records behind some rows."""
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    for key in pc.unique(table.column("record_key")).to_pylist():
        p, off = str(key >> RECORD_KEY_PARTITION_SHIFT), key & OFFSET_MASK
        start[p] = min(start.get(p, off), off)
        end[p] = max(end.get(p, off + 1), off + 1)
    return start, end


def choose_records(table: pa.Table) -> tuple[dict[tuple[int, int], tuple[int, int]], int]:
    """One Kafka record per chunk (file id, first line): the lowest record key -> rows; and
    how many records the rows came from (more than the chunks when a chunk came twice)."""
    per_record = (
        table.group_by(["file_id", "chunk_line", "record_key"], use_threads=False)
        .aggregate([("line_no", "count")])
        .to_pylist()
    )
    chosen: dict[tuple[int, int], tuple[int, int]] = {}
    for r in per_record:
        key = (r["file_id"], r["chunk_line"])
        if key not in chosen or r["record_key"] < chosen[key][0]:
            chosen[key] = (r["record_key"], r["line_no_count"])
    return chosen, len(per_record)


def commit_rows(conn: psycopg2.extensions.connection, table: pa.Table, batch_id: int) -> TaskResult:
    """Steps 1-5 for some decoded rows (ARROW_SCHEMA): safe to repeat, all or nothing."""
    result = TaskResult(rows_in=table.num_rows, pid=os.getpid())
    result.start, result.end = offsets_of(table)
    result.oldest_ms = int(pc.min(table.column("kafka_ts")).as_py() or 0)
    try:
        with conn.cursor() as cur:
            # Creating a partition locks trip_data until commit: in a transaction of its own.
            cur.execute("SELECT public.trip_data_partition_for(%s)", (batch_id,))
            conn.commit()
            _claim_and_write(cur, table, batch_id, result)
        conn.commit()
    except BaseException:
        if not conn.closed:
            try:
                conn.rollback()
            except psycopg2.Error:
                conn.close()
        raise
    return result


def _claim_and_write(
    cur: psycopg2.extensions.cursor, table: pa.Table, batch_id: int, result: TaskResult
) -> None:
    chosen, records = choose_records(table)
    claimed = psycopg2.extras.execute_values(
        cur,
        writer_sql("claim_chunks"),
        sorted((f, line, n, batch_id) for (f, line), (_, n) in chosen.items()),
        fetch=True,
        page_size=10000,
    )
    keep = [chosen[(int(f), int(line))][0] for f, line in claimed]
    rows = table
    if len(keep) < records:  # a chunk claimed before, or a second copy of one
        rows = table.filter(pc.is_in(table.column("record_key"), pa.array(keep, pa.int64())))
    result.rows_new = rows.num_rows
    if not rows.num_rows:
        return
    rows = rows.append_column("batch_id", pa.array([batch_id] * rows.num_rows, pa.int64()))
    began = time.monotonic()
    _copy(cur, in_cell_order(rows), "public.trip_data", TRIP_COLUMNS)
    copied = time.monotonic()
    cur.execute(writer_sql("temp_tables"))
    for name, counts in aggregates(rows).items():
        _copy(cur, counts, f"tmp_{name}", COUNT_COLUMNS[name])
    cur.execute(writer_sql("upsert_counts"))
    counted = time.monotonic()
    per_file = (
        rows.group_by("file_id", use_threads=False).aggregate([("line_no", "count")]).to_pylist()
    )
    updated = psycopg2.extras.execute_values(
        cur,
        writer_sql("file_progress"),
        sorted((r["file_id"], r["line_no_count"]) for r in per_file),
        template="(%s::bigint, %s::bigint)",
        fetch=True,
    )
    result.files = [
        {"file_id": f, "name": n, "state": s, "rows_committed": c, "rows_valid": v}
        for f, n, s, c, v in updated
    ]
    result.copy_ms = int((copied - began) * 1000)
    result.counts_ms = int((counted - copied) * 1000)


# -- the mapInArrow functions --------------------------------------------------------------
def warm_up(url: str, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Before the first batch: load this module and open the Python worker's connection, so
    the first small file is not kept waiting for a worker's imports and connect."""
    for _ in batches:
        pass
    worker_connection(url)
    yield pa.RecordBatch.from_pylist([{"result": str(os.getpid())}])


def write_task(
    url: str, batch_id: int, driver_pgid: int, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """mapInArrow over one task's records (RECORD_SCHEMA) -> one RESULT_SCHEMA row."""
    from pyspark import TaskContext

    started = time.monotonic()
    received = list(batches)
    if not received or not sum(b.num_rows for b in received):
        return
    table = decode_records(pa.Table.from_batches(received))
    del received  # the payloads; the decoded rows are all the task needs from here
    decoded = time.monotonic()
    faults = {name: os.environ.get(name) == str(batch_id) for name in FAULT_ENVS}
    context = TaskContext.get()
    first_task = context is None or context.partitionId() == 0
    if faults[KILL_DRIVER_AFTER_COMMIT_ENV] and not first_task:
        time.sleep(10)  # the first task commits and kills the driver meanwhile
    result = retry(
        lambda: commit_rows(worker_connection(url), table, batch_id),
        what=f"batch {batch_id} task",
        attempts=12,
        first_delay=0.5,
    )
    result.decode_ms = int((decoded - started) * 1000)
    if result.rows_new and faults[KILL_DRIVER_AFTER_COMMIT_ENV] and first_task:
        logger.warning("fault injection: killing the driver after a task's commit")
        os.killpg(driver_pgid, signal.SIGKILL)
    if result.rows_new and faults[KILL_TASK_AFTER_COMMIT_ENV]:
        logger.warning("fault injection: killing this Python worker after its commit")
        os.kill(os.getpid(), signal.SIGKILL)
    yield pa.RecordBatch.from_pylist([{"result": result.to_json()}])
