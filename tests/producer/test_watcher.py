"""The inbox watcher on a real folder (inotify): when a file counts as complete."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from producer.watcher import InboxWatcher

SETTLE_S = 30.0  # longer than any wait here: "ready" below never comes from settling


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[InboxWatcher]:
    w = InboxWatcher(tmp_path / "inbox", SETTLE_S)
    w.start()
    yield w
    w.stop()


def ready_within(w: InboxWatcher, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        w.wait(0.1)
        if ready := w.ready():
            return [p.name for p in ready]
    return []


def test_a_file_moved_in_from_another_folder_is_ready_at_once(
    watcher: InboxWatcher, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("region\n")
    outside.rename(watcher.inbox / "moved.csv")
    assert ready_within(watcher, 5) == ["moved.csv"]


def test_a_file_still_being_written_waits_for_its_close(watcher: InboxWatcher) -> None:
    with (watcher.inbox / "copy.csv").open("w") as f:
        f.write("region\n")
        f.flush()
        assert ready_within(watcher, 1) == []  # open for writing: not complete
    assert ready_within(watcher, 5) == ["copy.csv"]


def test_in_progress_names_are_ignored_until_renamed(watcher: InboxWatcher) -> None:
    part = watcher.inbox / "big.csv.part"
    part.write_text("region\n")
    (watcher.inbox / ".hidden.csv").write_text("region\n")
    assert ready_within(watcher, 1) == []
    part.rename(watcher.inbox / "big.csv")
    assert ready_within(watcher, 5) == ["big.csv"]
