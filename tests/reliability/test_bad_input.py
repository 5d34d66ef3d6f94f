"""Hostile input: every bad row quarantined with a reason, bad files rejected with a report,
good rows of the same file still published, and the watcher keeps running."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tripstream.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

HEADER = b"region,origin_coord,destination_coord,datetime,datasource\n"
GOOD = b"Turin,POINT (7.67 44.99),POINT (7.72 45.06),2018-05-21 02:54:04,baba_car\n"
SQLISH = (
    b'"Robert\'); DROP TABLE trip_data;--",POINT (7.6 45),POINT (7.7 45),2018-05-21 02:54:04,x\n'
)

# name -> (content, expected quarantined lines with a reason fragment, expected good rows)
ROW_CASES: dict[str, tuple[bytes, dict[int, str], int]] = {
    "missing column.csv": (
        HEADER + GOOD + b"Turin,POINT (1 2),2018-05-21 02:54:04,x\n",
        {3: "expected 5 columns, found 4"},
        1,
    ),
    "extra column.csv": (
        HEADER + GOOD.rstrip(b"\n") + b",extra\n" + GOOD,
        {2: "expected 5 columns, found 6"},
        1,
    ),
    "unterminated quote.csv": (
        HEADER + b'"Turin,POINT (1 2),POINT (3 4),2018-05-21 02:54:04,x\n' + GOOD,
        {2: "malformed CSV"},
        1,
    ),
    "nul bytes.csv": (
        HEADER + b"Tu\x00rin,POINT (1 2),POINT (3 4),2018-05-21 02:54:04,x\n" + GOOD,
        {2: "NUL"},
        1,
    ),
    "invalid utf8.csv": (
        HEADER + b"Tur\xffin,POINT (1 2),POINT (3 4),2018-05-21 02:54:04,x\n" + GOOD,
        {2: "not valid UTF-8"},
        1,
    ),
    "long line.csv": (
        HEADER + b"Turin," + b"x" * (1 << 20) + b",POINT (3 4),2018,x\n" + GOOD,
        {2: "bytes long"},
        1,
    ),
    "out of range.csv": (
        HEADER
        + b"Turin,POINT (181 2),POINT (3 4),2018-05-21 02:54:04,x\n"
        + b"Turin,POINT (NaN 2),POINT (3 4),2018-05-21 02:54:04,x\n"
        + GOOD,
        {2: "out of range", 3: "not a WKT point"},
        1,
    ),
    "feb 30.csv": (
        HEADER + b"Turin,POINT (1 2),POINT (3 4),2018-02-30 10:00:00,x\n" + GOOD,
        {2: "not a valid date"},
        1,
    ),
    "sql region \u00e9t\u00e9 ..csv": (HEADER + SQLISH + GOOD, {}, 2),
}
FILE_CASES = {
    "empty.csv": (b"", "empty"),
    "header only.csv": (HEADER, "no rows"),
    "wrong header.csv": (b"a,b,c,d,e\n" + GOOD, "header is"),
    "binary.csv": (bytes(range(256)) * 10, "binary"),
    "notes.txt": (b"hello\n", "not a .csv"),
    "broken.csv.gz": (b"\x1f\x8b" + b"not really gzip" * 10, "cannot be read"),
}


def test_hostile_corpus(settings: Settings, db: Any, producer_thread: Any) -> None:
    producer_thread(settings)
    inbox = settings.paths.inbox
    for name, (content, _, _) in ROW_CASES.items():
        (inbox / name).write_bytes(content)
    for name, (content, _) in FILE_CASES.items():
        (inbox / name).write_bytes(content)
    (inbox / "fine.csv.gz").write_bytes(gzip.compress(HEADER + GOOD * 3))
    total = len(ROW_CASES) + len(FILE_CASES) + 1
    wait_for(lambda: _states(db) == total, 60, "every file handled")

    for name, (_, bad, good) in ROW_CASES.items():
        db.execute(
            "SELECT state, rows_valid, rows_rejected FROM ingest_files WHERE name = %s", (name,)
        )
        assert db.fetchone() == ("published", good, len(bad)), name
        db.execute(
            "SELECT line_no, reason FROM quarantine WHERE file_name = %s ORDER BY 1", (name,)
        )
        rows = db.fetchall()
        assert [n for n, _ in rows] == sorted(bad), name
        for line, reason in rows:
            assert bad[line] in reason and "Try" in reason, (name, reason)
        assert (settings.paths.done / name).exists()
        assert (settings.paths.done / (name + ".quarantine.csv")).exists() == bool(bad)
    for name, (_, reason) in FILE_CASES.items():
        db.execute("SELECT state, error FROM ingest_files WHERE name = %s", (name,))
        state, error = db.fetchone()
        assert state == "rejected" and reason in error and "Try" in error, (name, error)
        report = settings.paths.rejected / (name + ".report.txt")
        assert reason in report.read_text(), name
    db.execute("SELECT rows_valid FROM ingest_files WHERE name = 'fine.csv.gz'")
    assert db.fetchone() == (3,)
    assert not any(p.is_file() for p in inbox.iterdir())


def test_unwritable_done_folder_keeps_the_file(
    settings: Settings, db: Any, tmp_path: Path, producer_thread: Any, sample_csv: Path
) -> None:
    blocked = tmp_path / "done-is-a-file"
    blocked.write_text("not a folder")
    from dataclasses import replace

    broken = settings.replace(paths=replace(settings.paths, done=blocked / "done"))
    (settings.paths.inbox / "trips.csv").write_bytes(sample_csv.read_bytes())
    producer = producer_thread(broken)
    wait_for(lambda: _states(db) == 1, 30, "file published")
    assert (settings.paths.inbox / "trips.csv").exists()  # acknowledged, but not moved
    assert not producer.errors  # the service keeps running
    producer.close()
    # with a writable folder the same file completes, once
    producer_thread(settings)
    wait_for(lambda: (settings.paths.done / "trips.csv").exists(), 30, "file moved to done/")
    db.execute("SELECT state, rows_valid FROM ingest_files")
    assert db.fetchone() in {("published", 100), ("committed", 100)}


def _states(db: Any) -> int:
    db.execute(
        "SELECT count(*) FROM ingest_files WHERE state IN ('published', 'rejected', 'committed')"
    )
    return int(db.fetchone()[0])
