"""Watch the inbox with watchdog and hand over files only once they are complete.

A file is complete when (a) it was renamed or moved into the inbox (writers that write
`x.part` or `x.tmp` and rename; `mv` from another folder), (b) its writer closed it
(inotify close-write), or (c) its size and mtime have not changed for `settle_seconds`
(slow copies, network shares, start-up).
Hidden files and in-progress names (*.part, *.tmp, *.crdownload, *.swp) are ignored;
subfolders are not descended into (logged once); files not named *.csv or *.csv.gz are
moved to rejected/ with a report. Files already in the inbox at start are picked up by the
first scan.
"""

from __future__ import annotations

import logging
import queue
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

logger = logging.getLogger(__name__)

IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp", ".partial")
ACCEPTED_SUFFIXES = (".csv", ".csv.gz")


def classify(path: Path) -> str:
    """'ignore' (hidden / in progress / folder), 'reject' (not CSV) or 'candidate'."""
    name = path.name
    lower = name.lower()
    if name.startswith(".") or lower.endswith(IN_PROGRESS_SUFFIXES):
        return "ignore"
    if lower.endswith(ACCEPTED_SUFFIXES):
        return "candidate"
    return "reject"


@dataclass
class _Pending:
    size: int
    mtime: float
    changed_at: float
    closed: bool = False
    retry_at: float = 0.0
    failures: int = 0


class _Handler(FileSystemEventHandler):
    def __init__(self, events: queue.Queue[tuple[str, Path]], inbox: Path) -> None:
        self.events, self.inbox = events, inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if isinstance(event, FileMovedEvent):
            dest = Path(str(event.dest_path))
            if dest.parent == self.inbox:
                self.events.put(("ready", dest))
        elif isinstance(event, FileClosedEvent):
            self.events.put(("ready", Path(str(event.src_path))))
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent):
            self.events.put(("changed", Path(str(event.src_path))))


def _observer() -> BaseObserver:
    """On Linux, inotify with full events: a file moved in from another folder of the same
    filesystem (`mv x.csv inbox/`) is then a move, ready at once; the default emitter
    reported it as a new file, which waited `settle_seconds` for its size to settle."""
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver(generate_full_events=True)
    return Observer()


class InboxWatcher:
    """Tracks candidate files; `ready()` returns the complete ones, oldest first."""

    def __init__(self, inbox: Path, settle_seconds: float) -> None:
        self.inbox, self.settle = inbox, settle_seconds
        self.events: queue.Queue[tuple[str, Path]] = queue.Queue()
        self.pending: dict[Path, _Pending] = {}
        self._warned: set[Path] = set()
        self._observer = _observer()

    def start(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        self._observer.schedule(_Handler(self.events, self.inbox), str(self.inbox), recursive=False)
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)

    def wait(self, timeout: float) -> None:
        """Block until an event arrives or timeout passes, then absorb every queued event."""
        try:
            self._absorb(*self.events.get(timeout=timeout))
        except queue.Empty:
            return
        while True:
            try:
                self._absorb(*self.events.get_nowait())
            except queue.Empty:
                return

    def _absorb(self, kind: str, path: Path) -> None:
        if path.parent != self.inbox or classify(path) == "ignore":
            return
        now = time.monotonic()
        entry = self._track(path, now)
        if entry is None:
            return
        if kind == "ready":
            entry.closed = True
        else:
            entry.closed, entry.changed_at = False, now

    def _track(self, path: Path, now: float) -> _Pending | None:
        try:
            st = path.stat()
        except OSError:
            self.pending.pop(path, None)
            return None
        entry = self.pending.get(path)
        if entry is None:
            entry = self.pending[path] = _Pending(st.st_size, st.st_mtime, now)
        elif (st.st_size, st.st_mtime) != (entry.size, entry.mtime):
            entry.size, entry.mtime, entry.changed_at, entry.closed = (
                st.st_size,
                st.st_mtime,
                now,
                False,
            )
        return entry

    def scan(self) -> None:
        """Find files the events missed (start-up, overflow) and refresh sizes."""
        now = time.monotonic()
        for path in self.inbox.iterdir():
            if path.is_dir():
                if path not in self._warned:
                    logger.warning(
                        "%s is a folder: subfolders of the inbox are not watched; "
                        "move its files into %s",
                        path,
                        self.inbox,
                    )
                    self._warned.add(path)
                continue
            if classify(path) != "ignore":
                self._track(path, now)
        for path in [p for p in self.pending if not p.exists()]:
            del self.pending[path]

    def ready(self) -> list[Path]:
        now = time.monotonic()
        done = [
            p
            for p, e in self.pending.items()
            if now >= e.retry_at and (e.closed or now - e.changed_at >= self.settle)
        ]
        return sorted(done, key=lambda p: self.pending[p].changed_at)

    def finished(self, path: Path) -> None:
        self.pending.pop(path, None)

    def failed(self, path: Path) -> float:
        """Back off a file whose ingest hit a transient error; returns the delay."""
        entry = self.pending.get(path)
        if entry is None:
            return 0.0
        entry.failures += 1
        delay = min(2.0**entry.failures, 60.0)
        entry.retry_at = time.monotonic() + delay
        return delay
