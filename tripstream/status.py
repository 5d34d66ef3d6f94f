"""`tripstream status [--follow]`: per-file ingestion status, pushed with LISTEN/NOTIFY.

--follow never polls: it LISTENs on `tripstream_status` and sleeps in select() on the
connection's socket. If the connection drops it reconnects with backoff, LISTENs again
and catches up from the tables (files updated since the last change it printed), so no
update is lost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import select
import time
from typing import Any

import psycopg2
import psycopg2.extensions

from tripstream.db import connect, load_query
from tripstream.output import render
from tripstream.settings import Settings

logger = logging.getLogger(__name__)
CHANNEL = "tripstream_status"


def snapshot(
    url: str, *, limit: int, since: dt.datetime | None = None
) -> tuple[list[str], list[tuple[Any, ...]], list[str], list[tuple[Any, ...]]]:
    conn = connect(url, application="tripstream-status")
    try:
        with conn.cursor() as cur:
            cur.execute(load_query("status_files"), {"since": since, "limit": limit})
            file_cols = [d[0] for d in cur.description or []]
            files = list(cur.fetchall())
            cur.execute(load_query("status_totals"))
            total_cols = [d[0] for d in cur.description or []]
            totals = list(cur.fetchall())
        return file_cols, files, total_cols, totals
    finally:
        conn.close()


def show(settings: Settings, args: argparse.Namespace) -> int:
    from tripstream.stack.local import LocalStack

    file_cols, files, total_cols, totals = snapshot(settings.database.reader, limit=args.limit)
    if args.format == "json":
        print(
            json.dumps(
                {
                    "files": json.loads(render(file_cols, files, "json")),
                    "totals": json.loads(render(total_cols, totals, "json")),
                },
                indent=2,
            )
        )
        return 0
    running = LocalStack(settings).running()
    if running:
        print("services: " + ", ".join(f"{n} (pid {p})" for n, p in sorted(running.items())))
    print(render(file_cols, files, "table"))
    print()
    print(render(total_cols, totals, "table"))
    return 0


def _describe(event: dict[str, Any]) -> str:
    if event.get("kind") == "batch":
        return (
            f"batch {event['batch_id']}: {event['rows']} rows committed, "
            f"lag {event.get('lag_ms')} ms, files "
            + ", ".join(
                f"{f['name']} {f['rows_committed']}/{f['rows_valid']} {f['state']}"
                for f in event.get("files", [])
            )
        )
    return (
        f"file {event.get('name')}: {event.get('state')} (valid {event.get('rows_valid')}, "
        f"rejected {event.get('rows_rejected')}, published {event.get('rows_published')}, "
        f"committed {event.get('rows_committed')})"
    )


def _listen(url: str) -> psycopg2.extensions.connection:
    conn = connect(url, application="tripstream-status-follow")
    conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    with conn.cursor() as cur:
        cur.execute(f"LISTEN {CHANNEL}")
    return conn


def follow(
    settings: Settings,
    args: argparse.Namespace,
    *,
    max_events: int | None = None,
    emit: Any = print,
) -> int:
    """Print every status change as it happens, until interrupted (or max_events)."""
    url = settings.database.reader
    events = 0
    since: dt.datetime | None = None
    delay = 0.5
    fmt = getattr(args, "format", "table")
    while max_events is None or events < max_events:
        try:
            conn = _listen(url)  # LISTEN first, then read: nothing falls in between
            file_cols, files, _, _ = snapshot(url, limit=args.limit, since=since)
            for row in reversed(files):
                record = dict(zip(file_cols, row, strict=True))
                since = max(since, record["updated_at"]) if since else record["updated_at"]
                emit(
                    json.dumps({"kind": "file", **json.loads(render(file_cols, [row], "json"))[0]})
                    if fmt == "json"
                    else _describe({"kind": "file", **record})
                )
            delay = 0.5
            while max_events is None or events < max_events:
                if select.select([conn], [], [], 30.0) == ([], [], []):
                    with conn.cursor() as cur:  # keep-alive: detects a dead server
                        cur.execute("SELECT 1")
                    continue
                conn.poll()
                while conn.notifies:
                    event = json.loads(conn.notifies.pop(0).payload)
                    if event.get("kind") == "file" and event.get("updated_at"):
                        stamp = dt.datetime.fromisoformat(event["updated_at"])
                        since = max(since, stamp) if since else stamp
                    emit(json.dumps(event) if fmt == "json" else _describe(event))
                    events += 1
            conn.close()
        except psycopg2.OperationalError as e:
            logger.warning(
                "status connection lost (%s); reconnecting in %.1fs", str(e).strip(), delay
            )
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        except KeyboardInterrupt:
            return 0
    return 0
