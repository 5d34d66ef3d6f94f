"""`tripstream status`: snapshot and pushed updates (LISTEN/NOTIFY), with reconnects."""

from __future__ import annotations

import argparse
import shutil
import threading
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.conftest import load_through_writer, wait_for
from tripstream.cli import main
from tripstream.settings import Settings
from tripstream.stack.postgres import SUPERUSER, EmbeddedPostgres
from tripstream.status import follow

pytestmark = pytest.mark.integration


def test_follow_receives_a_file_dropped_after_it_started(
    settings: Settings, db: Any, sample_csv: Path, producer_thread: Any
) -> None:
    seen, listener = start_follow(settings, db, max_events=6)
    producer_thread(settings)
    shutil.copy(sample_csv, settings.paths.inbox / "dropped later.csv")
    wait_for(lambda: any(": published" in s for s in seen), 30, "published notification")
    assert any("file dropped later.csv: seen" in s for s in seen)
    assert any("file dropped later.csv: published (valid 100" in s for s in seen)
    listener.join(timeout=10)


def test_follow_reconnects_and_catches_up(
    settings: Settings, db: Any, sample_csv: Path, postgres: EmbeddedPostgres
) -> None:
    seen, listener = start_follow(settings, db, max_events=1)
    # only the superuser may end another role's session (the writer is not one)
    admin = psycopg2.connect(postgres.url.replace("tripstream@", f"{SUPERUSER}@"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'tripstream-status-follow'"
        )
    admin.close()
    # while it reconnects a file is committed; the catch-up or the notification shows it
    db.execute(
        "INSERT INTO ingest_files (file_id, sha256, name, size_bytes, state, rows_valid)"
        " VALUES (5, 'x', 'while away.csv', 1, 'published', 100)"
    )
    load_through_writer(settings.database.url, [sample_csv])
    wait_for(lambda: any("while away.csv" in s for s in seen), 30, "catch-up after reconnect")
    listener.join(timeout=1)  # a daemon thread; it may be waiting for the next event


def test_status_snapshot_shows_files_and_totals(
    settings: Settings, db: Any, sample_csv: Path, capsys: Any, monkeypatch: Any
) -> None:
    db.execute(
        "INSERT INTO ingest_files (file_id, sha256, name, size_bytes, state, rows_valid)"
        " VALUES (1000, 'x', 'trips.csv', 1, 'published', 100)"
    )
    load_through_writer(settings.database.url, [sample_csv])
    monkeypatch.setenv("TRIPSTREAM_DATABASE_URL", settings.database.url)
    monkeypatch.setenv("TRIPSTREAM_PATHS_STATE_DIR", str(settings.paths.state_dir))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "trips.csv  committed" in out
    assert main(["status", "--format", "json"]) == 0
    assert '"rows_committed": 100' in capsys.readouterr().out


def start_follow(
    settings: Settings, db: Any, max_events: int
) -> tuple[list[str], threading.Thread]:
    """`status --follow` in a thread, collecting what it prints; returns once it LISTENs."""
    seen: list[str] = []
    listener = threading.Thread(
        target=follow,
        args=(settings, argparse.Namespace(limit=20, format="table")),
        kwargs={"max_events": max_events, "emit": seen.append},
        daemon=True,
    )
    listener.start()
    wait_for(lambda: _listening(db), 10, "LISTEN registered")
    return seen, listener


def _listening(db: Any) -> bool:
    db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tripstream-status-follow'"
    )
    return bool(db.fetchone()[0])
