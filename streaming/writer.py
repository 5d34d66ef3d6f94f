"""foreachBatch sink, the driver's part: the batch is written where it lies.

Each Spark task decodes its own Kafka records on its executor and commits their rows in a
Postgres transaction of its own (streaming/task.py, through `mapInArrow`). The driver only
collects the tasks' small results (rows, offsets, files, timings), then, in one short
transaction, records the batch in `stream_batches` (checkpoint, batch id, offsets) and
sends `pg_notify`. No row of a micro-batch passes through the driver.

Exactly once, chunk by chunk: every row is committed together with its chunk's claim in
`ingested_chunks`, so whatever Spark re-runs (a task after its commit, a whole replayed
batch after a driver crash, two attempts at once) finds the claim and writes nothing again.
The batch ledger row is written once: a replayed batch finds it and is logged as a replay.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import time
from typing import Any

from streaming.task import RESULT_SCHEMA, TaskResult, write_task, writer_sql
from tripstream.db import retry, transaction

logger = logging.getLogger(__name__)
# Fault injection for the exactly-once test: die right after the driver recorded batch N,
# before Spark records the batch in its checkpoint (a crash at the worst moment).
CRASH_AFTER_COMMIT_ENV = "TRIPSTREAM_FAULT_CRASH_AFTER_COMMIT"


@functools.cache
def _driver_pgid() -> int:
    return os.getpgid(0)


def merge(results: list[TaskResult]) -> TaskResult:
    """The batch's totals from its tasks' results."""
    total = TaskResult()
    for r in results:
        total.rows_in += r.rows_in
        total.rows_new += r.rows_new
        for p, off in r.start.items():
            total.start[p] = min(total.start.get(p, off), off)
        for p, off in r.end.items():
            total.end[p] = max(total.end.get(p, off), off)
        stamps = [x for x in (total.oldest_ms, r.oldest_ms) if x]  # 0: not known
        total.oldest_ms = min(stamps, default=0)
        total.files += r.files
        total.decode_ms = max(total.decode_ms, r.decode_ms)
        total.copy_ms = max(total.copy_ms, r.copy_ms)
        total.counts_ms = max(total.counts_ms, r.counts_ms)
    return total


def record_batch(
    url: str, checkpoint: str, batch_id: int, total: TaskResult, duration_ms: int
) -> bool:
    """The batch ledger row and the batch's notification; False if the batch had been
    recorded before (a replay)."""
    offsets = {"start": total.start, "end": total.end}
    with transaction(url, application="tripstream-streaming") as cur:
        cur.execute(
            writer_sql("record_batch"),
            {
                "checkpoint": checkpoint,
                "batch_id": batch_id,
                "offsets": json.dumps(offsets),
                "rows_in": total.rows_in,
                "rows_new": total.rows_new,
                "duration_ms": duration_ms,
                "decode_ms": total.decode_ms,
                "copy_ms": total.copy_ms,
                "counts_ms": total.counts_ms,
            },
        )
        new = cur.fetchone() is not None
        note = {
            "kind": "batch",
            "batch_id": batch_id,
            "rows": total.rows_new,
            "duration_ms": duration_ms,
            "lag_ms": int(time.time() * 1000) - total.oldest_ms if total.oldest_ms else None,
            "files": total.files[:20],
        }
        cur.execute("SELECT pg_notify('tripstream_status', %s)", (json.dumps(note),))
    return new


class BatchWriter:
    """The callable handed to foreachBatch."""

    def __init__(self, database_url: str, checkpoint: str) -> None:
        self.url, self.checkpoint = database_url, checkpoint

    def __call__(self, batch_df: Any, batch_id: int) -> None:
        started = time.monotonic()
        task = functools.partial(write_task, self.url, batch_id, _driver_pgid())
        rows = batch_df.mapInArrow(task, RESULT_SCHEMA).collect()
        if not rows:
            return  # no records in this batch
        results = [TaskResult.from_json(r["result"]) for r in rows]
        total = merge(results)
        tasks_ms = int((time.monotonic() - started) * 1000)
        new = retry(
            lambda: record_batch(self.url, self.checkpoint, batch_id, total, tasks_ms),
            what=f"record batch {batch_id}",
            attempts=12,
            first_delay=0.5,
        )
        if os.environ.get(CRASH_AFTER_COMMIT_ENV) == str(batch_id):
            logger.warning("fault injection: killing the driver after commit of batch %s", batch_id)
            os.kill(os.getpid(), signal.SIGKILL)
        logger.info(
            "batch %s: %s rows in, %s new, %s tasks in %s Python workers, %s ms "
            "(slowest task: decode %s, copy %s, counts %s)%s",
            batch_id,
            total.rows_in,
            total.rows_new,
            len(results),
            len({r.pid for r in results}),
            int((time.monotonic() - started) * 1000),
            total.decode_ms,
            total.copy_ms,
            total.counts_ms,
            "" if new else " (replay: already committed)",
        )
