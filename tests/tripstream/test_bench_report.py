"""Pure logic of the benchmark report."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def test_milestones_are_one_and_three_per_decade_below_the_size() -> None:
    from tripstream.bench import milestones

    assert milestones(100_000_000) == [1_000_000, 3_000_000, 10_000_000, 30_000_000]
    assert milestones(10_000_000) == [1_000_000, 3_000_000]
    assert milestones(5000) == []


def test_rate_over_time_is_rows_per_second_over_the_window() -> None:
    from tripstream.bench import rate_over_time

    timeline = [(float(t), 100 * t) for t in range(0, 200, 10)]  # a steady 100 rows/s
    rates = rate_over_time(timeline, window=60)
    assert rates and all(r == 100 for _, r in rates)
    assert rates[0][0] == 3000  # the first point with half a window behind it


def test_the_watch_counts_a_process_and_its_python_children(tmp_path: Path) -> None:
    """Real processes: a launcher whose Python child burns CPU. The child is counted in
    its own row (as an executor's Python workers are), not dropped."""
    from tripstream.bench import MemoryWatch

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass\n"
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])",
        ]
    )
    try:
        (tmp_path / "job.pid").write_text(str(launcher.pid))
        watch = MemoryWatch(tmp_path)
        deadline = time.monotonic() + 30
        while launcher.poll() is None and time.monotonic() < deadline:
            watch._sample()
            time.sleep(0.05)
    finally:
        launcher.kill()
    assert watch.peak_mb["job python"] > 0
    assert watch.cpu_seconds()["job python"] >= 0.5  # the burn, seen while it ran


def test_cpu_watched_counts_the_cpu_spent_inside_the_block(tmp_path: Path) -> None:
    """The floor's accounting: the bench's own process, burning CPU inside the block, is
    counted under "floor writers", from the block's start to its end."""
    from tripstream.bench import cpu_watched

    (tmp_path / "run").mkdir()
    into: dict[str, float] = {}
    with cpu_watched(tmp_path / "run", {}, into):
        # a child of the bench (as the stack is when the bench started it): counted in its
        # own row by its pid file, never again under the bench's
        child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        t = time.process_time()
        while time.process_time() - t < 1.0:
            pass
    child.kill()  # reaped after the block, as the stack outlives the floor
    child.wait()
    assert 0.9 <= into["floor writers"] < 1.7  # its own second, not the child's too
    assert set(into) == {"floor writers"}  # no server there: no "postgres" row, not a zero


def test_a_child_reaped_during_the_walk_keeps_its_cpu(tmp_path: Path) -> None:
    """Real processes: a child that burned a second exits and is reaped by its parent
    between the parent's reading and its own (the floor's writers' backends at the floor's
    last sample). The second, seen before, stays counted: not lost (-1 s) when the child
    drops out of the walk, nor counted again (+1 s) when the parent's reaped CPU has it."""
    import psutil

    from tripstream.bench import MemoryWatch

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass\n"
    child = subprocess.Popen([sys.executable, "-c", burn + "time.sleep(60)\n"])
    try:
        deadline = time.monotonic() + 30
        while sum(psutil.Process(child.pid).cpu_times()[:2]) < 0.9:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        reap: list[bool] = []  # non-empty: reap the child when the walk comes to it

        class ReapMidWalk(MemoryWatch):
            @staticmethod
            def _row(stem: str, p: psutil.Process, parent: str) -> str:
                if reap and p.pid == child.pid:
                    child.kill()
                    child.wait()  # reaped by this process, the walk's root
                return MemoryWatch._row(stem, p, parent)

        # this process as the server: its children count in its row, as backends do
        watch = ReapMidWalk(tmp_path, {"postgres": os.getpid()})
        watch._sample()  # the child's second, counted as its own
        reap.append(True)
        watch._sample()  # the child gone, not yet in its parent's reaped CPU
        watch._sample()  # ... now in it
    finally:
        child.kill()
        child.wait()
    assert 0 <= watch.cpu_seconds()["postgres"] < 0.5


def test_a_worker_whose_parent_ignores_sigchld_keeps_its_cpu(tmp_path: Path) -> None:
    """Real processes, as pyspark's daemon runs them: a parent that ignores SIGCHLD (its
    exited children are reaped by the kernel, and their CPU is added to no one) forks a
    worker that burns a second and exits, and one that stays. The row keeps the second."""
    import psutil

    from tripstream.bench import MemoryWatch

    daemon = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, time\n"
            "signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
            "for burn in (0.0, 1.0):\n"
            "    if os.fork() == 0:\n"
            "        t = time.process_time()\n"
            "        while time.process_time() - t < burn: pass\n"
            "        time.sleep(60 if burn == 0 else 0.5)\n"
            "        os._exit(0)\n"
            "print('forked', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        (tmp_path / "job.pid").write_text(str(daemon.pid))
        assert daemon.stdout is not None and daemon.stdout.readline() == "forked\n"
        watch = MemoryWatch(tmp_path)
        watch._sample()
        assert len(psutil.Process(daemon.pid).children()) == 2  # the burner and the sleeper
        deadline = time.monotonic() + 30
        while len(psutil.Process(daemon.pid).children()) == 2:
            assert time.monotonic() < deadline
            watch._sample()  # the burner, seen while it runs
            time.sleep(0.05)
        watch._sample()  # the burner gone, the sleeper still in the row
    finally:
        for p in psutil.Process(daemon.pid).children():
            p.kill()
        daemon.kill()
        daemon.wait()
    assert watch.cpu_seconds()["job python"] >= 0.8
