"""`tripstream bench`: the COPY ceiling and the full pipeline on the same generated data.

1. ceiling: plain psycopg2 COPY of the files into an empty table of the seed's columns;
2. pipeline: the files dropped into the inbox of the running stack (started if needed)
   until every valid row is committed and counted; throughput sampled every second;
3. latency: small files dropped during the load, drop -> committed (p50/p95);
4. peak memory (RSS) of every process of the stack; query latencies at the final size;
5. exactness: the recount check must find 0 differences.
Results: bench/results/<stamp>.json, .md and .png.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg2
from kafka import TopicPartition

from tripstream import PROJECT_ROOT, SQL_DIR
from tripstream.db import connect, transaction
from tripstream.errors import SetupError
from tripstream.floor import measure_floor
from tripstream.generate import generate_files
from tripstream.kafka_clients import admin_client, consumer
from tripstream.settings import Settings

logger = logging.getLogger(__name__)
QUERIES = {
    "weekly-average --region Prague": ["weekly-average", "--region", "Prague"],
    "weekly-average --bbox (Prague centre)": [
        "weekly-average",
        "--bbox",
        "14.3712,50.0403,14.5121,50.1187",
    ],
    "similar": ["similar", "--limit", "20"],
    "latest-datasource": ["latest-datasource"],
    "regions --datasource cheap_mobile": ["regions", "--datasource", "cheap_mobile"],
}


def ceiling(url: str, files: list[Path]) -> dict[str, float]:
    conn = connect(url, application="tripstream-bench")
    rows = 0
    with conn, conn.cursor() as cur:
        cur.execute(
            "DROP TABLE IF EXISTS bench_ceiling; CREATE TABLE bench_ceiling (region text,"
            " origin_coord text, destination_coord text, date_time timestamp,"
            " datasource text)"
        )
    started = time.monotonic()
    for path in files:
        with conn, conn.cursor() as cur, path.open("rb") as f:
            cur.copy_expert("COPY bench_ceiling FROM STDIN WITH (FORMAT csv, HEADER true)", f)
            rows += cur.rowcount
    elapsed = time.monotonic() - started
    with conn, conn.cursor() as cur:
        cur.execute("DROP TABLE bench_ceiling")
    conn.close()
    return {"rows": rows, "seconds": round(elapsed, 2), "rows_per_s": round(rows / elapsed)}


def checkpoint(url: str) -> None:
    """Start the next phase at a checkpoint, as on a server that has been running.

    Until its first checkpoint, a server writes WAL into segments it has to create; after
    one, it recycles the old segments into the next ones. After the ceiling's 100M rows of
    WAL, the pipeline wrote into new segments until its first checkpoint, 200 s in: 70k
    rows/s, against 90k once the segments were recycled (a WAL-heavy INSERT took 8.6-9.4 s
    into new segments, 6.2-6.4 s into recycled ones, with or without wal_init_zero). The
    writer needs pg_checkpoint (the embedded server grants it); without it the phase starts
    as it is, and the log says so."""
    try:
        with transaction(url, application="tripstream-bench") as cur:
            cur.execute("CHECKPOINT")
    except psycopg2.Error as e:
        logger.warning(
            "no checkpoint before the next phase (%s): it may pay for the WAL segments of "
            "the one before. Try: GRANT pg_checkpoint TO the writer role",
            str(e).splitlines()[0],
        )


# A process as the watch knows it: its pid and start time (a pid can be reused).
ProcKey = tuple[int, float]


@dataclass
class _Seen:
    """One watched process at its last sample."""

    row: str
    parent: ProcKey | None  # its parent, when the watch walked it from there
    own: float  # its CPU seconds (user + system) since it started
    reaped: float  # the CPU of the children it reaped, as the kernel adds it up


class MemoryWatch(threading.Thread):
    """Peak RSS and CPU per stack process, sampled every second. A process's children count
    with it: an executor JVM's Python workers (where the Kafka source reads) under
    "<worker> executor python", the driver's Python (the foreachBatch writer) under
    "streaming python", every Postgres backend under "postgres" (its RSS: the largest one,
    as each maps the shared buffers).

    CPU is added up process by process, between samples: what each process used since the
    sample before, and what its parent reaped from children the watch never saw (a backend
    that lived less than a second). A process that goes keeps what it was seen to use. Its
    parent's reaped CPU, when it waits for it, then grows by its whole life: that is counted
    only beyond what the watch had seen of it. The sums of whole trees did not hold up:
    pyspark's daemon ignores SIGCHLD, so an exited Python worker's CPU left the tree (a 10M
    floor counted its executors' Python at -11 s), and a child reaped between its parent's
    reading and its own fell out of both."""

    def __init__(
        self,
        run_dir: Path,
        extra: dict[str, int] | None = None,
        alone: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(daemon=True)
        self.run_dir, self.peak_mb = run_dir, {}  # type: ignore[var-annotated]
        # PSS (each shared page split among the processes mapping it): sums without counting
        # a fork's or the shared buffers' pages twice. Per row, per Spark worker (what runs in
        # the 1 GB it offers: its executor and that one's Python workers; the worker daemon
        # is a row of its own) and for the whole stack, each at its peak.
        self.peak_pss_mb: dict[str, int] = {}
        self.worker_pss_mb: dict[str, int] = {}
        self.stack_pss_mb = 0
        self._samples = 0
        self.extra = extra or {}  # name -> the pid of a process outside run_dir (the server)
        # rows of one process, without its children (live or reaped): the bench's own, whose
        # children are the stack it started, each counted in its own row already
        self.alone = alone
        self.cpu: dict[str, float] = {}  # row -> CPU seconds since the watch started
        self._known: dict[ProcKey, _Seen] = {}  # every process, as last seen
        self._live: set[ProcKey] = set()  # the processes of the last sample
        self._credit: dict[ProcKey, float] = {}  # a parent's gone children, as seen
        self._since = time.time()
        self.done = threading.Event()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU (user + system) each row used while watched, to the 10 ms a clock tick
        counts (a 5000-row floor's writers take a few ticks)."""
        return {n: round(v, 2) for n, v in self.cpu.items()}

    def _roots(self) -> dict[str, int]:
        """Row name -> pid: the stack's pid files in run_dir, and the extra processes."""
        roots = {}
        for f in self.run_dir.glob("*.pid"):
            try:
                roots[f.stem] = int(f.read_text().split()[0])
            except (ValueError, OSError, IndexError):
                continue
        return {**roots, **self.extra}

    @staticmethod
    def _row(stem: str, p: psutil.Process, parent: str) -> str:
        """The row a child process counts in; `parent` is its parent's row."""
        if stem == "postgres":
            return stem
        if "CoarseGrainedExecutorBackend" in " ".join(p.cmdline()):
            return f"{stem} executor"
        # Spark's JVMs start Python workers only (through jspawnhelper, or a fork still
        # named after the JVM thread until it execs): every other child counts as Python.
        kind = "jvm" if p.name() == "java" else "python"
        return parent if parent.endswith(f" {kind}") else f"{parent} {kind}"

    @staticmethod
    def _pss_mb(p: psutil.Process, rss_mb: float) -> float:
        try:
            for line in Path(f"/proc/{p.pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return rss_mb

    def _walk(
        self, stem: str, root: psutil.Process, with_pss: bool, seen: dict[ProcKey, _Seen]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """RSS and PSS of one root and its children, by row; each process into `seen`."""
        rss: dict[str, float] = {}
        pss: dict[str, float] = {}
        # Each Postgres backend maps the shared buffers: take the largest, not the sum.
        merge = max if stem == "postgres" else (lambda a, b: a + b)
        todo: list[tuple[psutil.Process, str, ProcKey | None]] = [(root, stem, None)]
        while todo:
            p, parent, parent_key = todo.pop()
            try:
                name = stem if p is root else self._row(stem, p, parent)
                mb = p.memory_info().rss / 2**20
                t = p.cpu_times()
                key = (p.pid, p.create_time())
                kids = [] if stem in self.alone else p.children()
            except psutil.Error:
                continue
            rss[name] = merge(rss.get(name, 0.0), mb)
            if with_pss:
                pss[name] = pss.get(name, 0.0) + self._pss_mb(p, mb)
            reaped = 0.0 if stem in self.alone else t.children_user + t.children_system
            seen[key] = _Seen(name, parent_key, t.user + t.system, reaped)
            todo += [(k, name, key) for k in kids]
        return rss, pss

    def _count_cpu(self, seen: dict[ProcKey, _Seen]) -> None:
        """Add the CPU used since the last sample to each process's row."""
        for key in self._live - seen.keys():
            gone = self._known[key]
            if gone.parent is not None:
                # If its parent waits for it, the parent's reaped CPU grows by all of this.
                self._credit[gone.parent] = (
                    self._credit.get(gone.parent, 0.0) + gone.own + gone.reaped
                )
        for key in seen.keys() - self._live:
            back = self._known.get(key)
            if back is not None and back.parent in self._credit:  # missed in one sample
                self._credit[back.parent] -= back.own + back.reaped
        first = not self._samples
        for key, now in seen.items():
            self.cpu.setdefault(now.row, 0.0)
            before = self._known.get(key)
            if before is None:
                if first or key[1] < self._since:
                    before = now  # running before the watch: counted from here on
                else:
                    before = _Seen(now.row, now.parent, 0.0, 0.0)  # new: all of it
            reaped = now.reaped - before.reaped
            offset = max(0.0, min(self._credit.get(key, 0.0), reaped))
            if offset:
                self._credit[key] -= offset
            self.cpu[now.row] += now.own - before.own + reaped - offset
        self._known.update(seen)
        self._live = set(seen)

    def _sample(self) -> None:
        # PSS every 10th sample: reading it walks each process's page tables, and for the
        # Postgres backends (8 GB of shared buffers mapped) every second took a quarter of a
        # core from the run it measures.
        with_pss = self._samples % 10 == 0
        rss: dict[str, float] = {}
        pss: dict[str, float] = {}
        seen: dict[ProcKey, _Seen] = {}
        for stem, pid in self._roots().items():
            try:
                root = psutil.Process(pid)
            except psutil.Error:
                continue
            tree_rss, tree_pss = self._walk(stem, root, with_pss, seen)
            rss.update(tree_rss)
            pss.update(tree_pss)
        self._count_cpu(seen)
        self._samples += 1
        workers: dict[str, float] = {}
        for name, mb in pss.items():
            self.peak_pss_mb[name] = round(max(self.peak_pss_mb.get(name, 0), mb))
            if name.startswith("spark-worker-") and " executor" in name:
                worker = name.split()[0]
                workers[worker] = workers.get(worker, 0.0) + mb
        for worker, mb in workers.items():
            self.worker_pss_mb[worker] = round(max(self.worker_pss_mb.get(worker, 0), mb))
        if pss:
            self.stack_pss_mb = round(max(self.stack_pss_mb, sum(pss.values())))
        for name, mb in rss.items():
            self.peak_mb[name] = round(max(self.peak_mb.get(name, 0), mb))

    def run(self) -> None:
        self._sample()
        while not self.done.wait(1.0):
            self._sample()

    def stop(self) -> None:
        """Stop sampling, with a last sample, so the CPU counts up to now."""
        self.done.set()
        self.join()
        self._sample()


def postmaster_pid(url: str) -> dict[str, int]:
    """{"postgres": the server's postmaster pid} when the server runs on this machine (the
    parent of this session's backend), else {}: a remote server's CPU is not this
    machine's to count."""
    try:
        with transaction(url, application="tripstream-bench") as cur:
            cur.execute("SELECT pg_backend_pid()")
            backend = psutil.Process(int(cur.fetchone()[0]))  # type: ignore[index]
            postmaster = backend.parent()  # while the backend lives: it exits at the close
    except (psycopg2.Error, psutil.Error):
        return {}
    if postmaster is None or not postmaster.name().startswith("postgres"):
        return {}
    return {"postgres": postmaster.pid}


@contextlib.contextmanager
def cpu_watched(run_dir: Path, postgres: dict[str, int], into: dict[str, float]) -> Iterator[None]:
    """CPU seconds per process over the block, into `into`: Postgres (`postgres`: from
    postmaster_pid), the bench's own process alone (its threads are the floor's writers;
    its children are the stack, when the bench started it) under "floor writers", and the
    rest of the stack."""
    own = {"floor writers": os.getpid()}
    watch = MemoryWatch(run_dir, {**postgres, **own}, alone=frozenset(own))
    watch.start()
    try:
        yield
    finally:
        watch.stop()
        into.update(watch.cpu_seconds())


def _committed(url: str) -> int:
    with transaction(url, application="tripstream-bench") as cur:
        cur.execute("SELECT coalesce(sum(rows_committed), 0) FROM ingest_files")
        return int(cur.fetchone()[0])  # type: ignore[index]


def _committed_at(url: str, name: str) -> dt.datetime | None:
    with transaction(url, application="tripstream-bench") as cur:
        cur.execute(
            "SELECT committed_at FROM ingest_files WHERE name = %s AND state = 'committed'",
            (name,),
        )
        row = cur.fetchone()
        return row[0] if row else None


def _drop(path: Path, inbox: Path) -> None:
    """Put a file into the inbox atomically; a hard link where possible (100M rows of CSV
    are 12 GB: not worth a second copy on the same disk)."""
    part = inbox / f".{path.name}.part"
    try:
        part.hardlink_to(path)
    except OSError:
        shutil.copy(path, part)
    part.rename(inbox / path.name)


def warm_up(settings: Settings, work: Path, timeout: float = 300.0) -> float:
    """Drop one 100-row file and wait until it is committed, so the timed run measures a
    running stack (the brief's "dropped into the inbox of a running stack"), not the
    streaming job's start-up. Returns the seconds it took."""
    # A seed of its own each run: a file seen before (same name and rows) would be found
    # committed at once, by an earlier bench on the same database, and warm nothing up.
    seed = time.time_ns() // 1_000_000 % 1_000_000_000
    (path,) = generate_files(work / "warmup", rows=100, files=1, seed=seed, prefix="warmup")
    dropped = dt.datetime.now(dt.UTC)
    _drop(path, settings.paths.inbox)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            at = _committed_at(settings.database.url, path.name)
        except (psycopg2.Error, SetupError):
            at = None
        if at is not None:
            return round((at - dropped).total_seconds(), 2)
        time.sleep(0.2)
    raise SetupError(
        f"the warm-up file {path.name} was not committed within {timeout:.0f} s. "
        "Try: tripstream status, and the logs in .tripstream/run/"
    )


def milestones(rows: int) -> list[int]:
    """Sizes at which the queries are timed during the run: 1M, 3M, 10M, 30M, ..."""
    out, base = [], 1_000_000
    while base < rows:
        out += [m for m in (base, 3 * base) if m < rows]
        base *= 10
    return out


POSTGRES_STATS = """
SELECT w.wal_records, w.wal_fpi, w.wal_bytes::bigint,
       c.num_timed + c.num_requested AS checkpoints, c.buffers_written,
       d.blks_read, d.blks_hit,
       pg_total_relation_size('similar_trip_counts') AS similar_bytes,
       pg_total_relation_size('area_week_cells') AS area_cells_bytes,
       (SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint
        FROM pg_partition_tree('public.trip_data')) AS trip_data_bytes,
       (SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0)::bigint
        FROM pg_stat_user_tables) AS autovacuums
FROM pg_stat_wal w, pg_stat_checkpointer c, pg_stat_database d
WHERE d.datname = current_database()
"""


def postgres_stats(url: str) -> dict[str, int]:
    """WAL (records, full-page images, bytes), checkpoints, block reads against hits, the
    growing tables' sizes and autovacuum runs, cumulative: what may slow the writer."""
    with transaction(url, application="tripstream-bench") as cur:
        cur.execute(POSTGRES_STATS)
        row = cur.fetchone()
        names = [c.name for c in cur.description or []]
    return dict(zip(names, [int(v) for v in row or []], strict=False))


def phases(url: str, expected: int) -> list[dict[str, Any]]:
    """Per tenth of the bulk rows, in commit order: the slowest task's decode, COPY and
    count-upsert times per 100k rows of its batch (the express lane left out)."""
    with transaction(url, application="tripstream-bench") as cur:
        cur.execute(
            "SELECT rows_new, decode_ms, copy_ms, counts_ms FROM stream_batches"
            " WHERE checkpoint NOT LIKE '%%express' AND rows_new > 0"
            " AND copy_ms IS NOT NULL ORDER BY committed_at"
        )
        batches = cur.fetchall()
    out: list[dict[str, Any]] = []
    done, tenth = 0, max(expected // 10, 1)
    sums = [0, 0, 0, 0]
    for i, (rows, *ms) in enumerate(batches):
        sums = [sums[0] + rows, *(a + b for a, b in zip(sums[1:], ms, strict=True))]
        done += rows
        if done >= tenth * (len(out) + 1) or i == len(batches) - 1:
            per = 100_000 / max(sums[0], 1)
            out.append(
                {
                    "rows": done,
                    "decode_ms_per_100k": round(sums[1] * per),
                    "copy_ms_per_100k": round(sums[2] * per),
                    "counts_ms_per_100k": round(sums[3] * per),
                }
            )
            sums = [0, 0, 0, 0]
    return out[:10]


def pipeline(
    settings: Settings, files: list[Path], expected: int, probes: int, work: Path, timeout: float
) -> dict[str, Any]:
    url, inbox = settings.database.url, settings.paths.inbox
    base = _committed(url)
    started = time.monotonic()
    for path in files:  # rename into the inbox: complete files appear atomically
        _drop(path, inbox)
    timeline: list[tuple[float, int]] = []
    latencies: list[float] = []
    probe_files = (
        generate_files(
            work / "probes",
            rows=100 * probes,
            files=probes,
            seed=int(time.time() * 1000) % 1_000_000,
            prefix="probe",
        )
        if probes
        else []
    )
    pending: dict[str, dt.datetime] = {}
    deadline = started + timeout
    done = 0
    growth: list[dict[str, Any]] = []
    sizes = milestones(expected)
    stats: list[dict[str, Any]] = []
    next_stats = 0.0
    while time.monotonic() < deadline:
        try:
            done = _committed(url) - base
        except (psycopg2.Error, SetupError) as e:  # Postgres restarting: the run goes on
            logger.warning("progress unavailable (%s); sampling again", str(e).splitlines()[0])
            time.sleep(1.0)
            continue
        now = time.monotonic()
        timeline.append((round(now - started, 1), done))
        if now >= next_stats:
            next_stats = now + 15.0
            try:
                stats.append({"t": round(now - started, 1), "rows": done, **postgres_stats(url)})
            except psycopg2.Error as e:
                logger.warning("Postgres statistics unavailable: %s", str(e).splitlines()[0])
        # probes spread over the load: probe k once k/(probes+1) of the bulk is committed
        n_dropped = probes - len(probe_files)
        if probe_files and done > 0 and done >= expected * n_dropped / (probes + 1):
            probe = probe_files.pop(0)
            pending[probe.name] = dt.datetime.now(dt.UTC)
            _drop(probe, inbox)
        if sizes and done >= sizes[0]:
            sizes.pop(0)
            growth.append({"rows": done, "t": round(now - started, 1)})
            growth[-1]["queries_ms"] = query_latencies(settings)
            logger.info("at %s rows: queries %s", done, growth[-1]["queries_ms"])
        for name, dropped in list(pending.items()):
            try:
                at = _committed_at(url, name)
            except (psycopg2.Error, SetupError):
                break
            if at is not None:
                latencies.append((at - dropped).total_seconds())
                del pending[name]
        if done >= expected + 100 * (probes - len(probe_files)) and not pending and not probe_files:
            break
        time.sleep(1.0)
    elapsed = time.monotonic() - started
    bulk_rows = min(done, expected)
    # the bulk load ends at the first sample holding every bulk row (the probes come after)
    bulk_s = next((t for t, n in timeline if n >= expected), elapsed)
    started_at = next((t for t, n in timeline if n > 0), 0.0)  # first rows committed
    steady = [b - a for (_, a), (_, b) in zip(timeline, timeline[1:], strict=False)]
    return {
        "rows": done,
        "expected": expected,
        "seconds": round(bulk_s, 1),
        "rows_per_s": round(bulk_rows / bulk_s) if bulk_s else 0,
        "steady_rows_per_s": round(bulk_rows / (bulk_s - started_at)) if bulk_s > started_at else 0,
        "peak_rows_per_s": max(steady, default=0),
        "complete": done >= expected,
        "timeline": timeline,
        "growth": growth,
        "postgres": stats,
        "latency_s": {
            "samples": [round(x, 2) for x in latencies],
            "p50": _pct(latencies, 50),
            "p95": _pct(latencies, 95),
        },
    }


def _pct(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))], 2)


def query_latencies(settings: Settings) -> dict[str, float]:
    from tripstream.cli import build_parser
    from tripstream.query import answer

    out = {}
    for label, argv in QUERIES.items():
        args = build_parser().parse_args(["query", *argv])
        times = []
        for _ in range(5):
            t = time.monotonic()
            answer(settings.database.reader, args.question, args)
            times.append((time.monotonic() - t) * 1000)
        out[label] = round(statistics.median(times), 1)
    return out


def exactness(settings: Settings) -> dict[str, int]:
    with transaction(settings.database.url, application="tripstream-bench") as cur:
        cur.execute((SQL_DIR / "checks" / "recount.sql").read_text())
        diffs = {str(k): int(v) for k, v in cur.fetchall()}
        cur.execute(  # a partitioned table's own size is 0: sum its partitions
            "SELECT (SELECT count(*) FROM trip_data), pg_size_pretty(sum("
            "pg_total_relation_size(relid))) FROM pg_partition_tree('trip_data')"
        )
        rows, size = cur.fetchone()  # type: ignore[misc]
    return {**diffs, "trip_data_rows": int(rows), "trip_data_size": size}


def floor_cpu_lines(floor: dict[str, Any]) -> list[str]:
    """The floor's CPU a row: Postgres, its writers' Python, and the idle rest of the stack."""
    cpu = floor.get("cpu_s")
    if not cpu:
        return []
    us = {n: s * 1e6 / max(floor["rows"], 1) for n, s in cpu.items()}
    rest = sum(v for n, v in us.items() if n not in ("postgres", "floor writers"))
    return [
        "| floor CPU a row: Postgres; its writers' Python; the rest of the stack (idle) | "
        f"{us.get('postgres', 0):.1f}; {us.get('floor writers', 0):.1f}; {rest:.1f} µs |"
    ]


def write_report(result: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = result["stamp"]
    (out_dir / f"{stamp}.json").write_text(json.dumps(result, indent=2, default=str))
    p, c = result["pipeline"], result["ceiling"]
    lines = [
        f"# tripstream bench {stamp}",
        "",
        f"rows: {result['rows']} in {result['files']} files (valid {result['valid']})",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| COPY ceiling | {c['rows_per_s']:,} rows/s |",
        f"| pipeline, file drop to rows committed | {p['rows_per_s']:,} rows/s |",
        f"| ratio pipeline / ceiling | {result['ratio']:.3f} |",
        *(
            [
                f"| Postgres floor (writer SQL alone, no Kafka, no Spark) | "
                f"{result['floor']['rows_per_s']:,} rows/s |",
                f"| ratio pipeline / floor | {result['floor_ratio']:.2f} |",
                *floor_cpu_lines(result["floor"]),
            ]
            if "floor" in result
            else []
        ),
        "| rows/s per tenth of the rows | "
        + ", ".join(f"{d:,}" for d in result.get("deciles", []))
        + " |",
        f"| pipeline, steady (from the first committed rows) | {p['steady_rows_per_s']:,} rows/s |",
        f"| small-file latency p50 / p95 | {p['latency_s']['p50']} s / {p['latency_s']['p95']} s |",
        f"| all rows committed | {p['complete']} |",
        f"| warm-up 100-row file, includes job start | {result.get('warmup_s')} s |",
        "",
    ]
    lines += ["| query | median ms |", "| --- | --- |"]
    lines += [f"| {q} | {ms} |" for q, ms in result["queries_ms"].items()]
    growth = p.get("growth", [])
    if growth:
        names = list(growth[0]["queries_ms"])
        lines += ["", "| rows committed | s | " + " | ".join(names) + " |"]
        lines += ["| --- " * (len(names) + 2) + "|"]
        lines += [
            f"| {g['rows']:,} | {g['t']} | "
            + " | ".join(str(g["queries_ms"][n]) for n in names)
            + " |"
            for g in growth
        ]
    lines += growth_table(result)
    cpu = result.get("cpu_s", {})
    pss = result.get("peak_pss_mb", {})
    lines += ["", "| process | peak RSS MB | peak PSS MB | CPU s |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {n} | {mb} | {pss.get(n, '')} | {cpu.get(n, '')} |"
        for n, mb in sorted(result["peak_rss_mb"].items())
    ]
    lines += [
        "",
        "CPU s over the pipeline phase; a process's children count in its own rows (an"
        " executor's Python workers, the driver's Python); postgres: all backends, RSS of the"
        " largest, PSS of all (the shared buffers once).",
    ]
    if result.get("worker_pss_mb"):
        lines += [
            "",
            "Memory at its peak (PSS): in each Spark worker's 1 GB, its executor and its Python"
            " workers "
            + ", ".join(f"{w} {mb} MB" for w, mb in sorted(result["worker_pss_mb"].items()))
            + f"; the whole stack {result.get('stack_pss_mb', 0):,} MB.",
        ]
    if result.get("notes"):
        lines += ["", "Notes:", "", result["notes"]]
    lines += [
        "",
        "exactness (differences must be 0): " + json.dumps(result["exactness"]),
        "",
        f"![throughput]({stamp}.png)",
    ]
    summary = out_dir / f"{stamp}.md"
    summary.write_text("\n".join(lines) + "\n")
    _plot(result, out_dir / f"{stamp}.png")
    return summary


def growth_table(result: dict[str, Any]) -> list[str]:
    """Per tenth of the rows: the rate, where the tasks' time went, and Postgres's WAL,
    full-page images, checkpoints, block reads and table sizes over that tenth."""
    tenths, stats = result.get("phases", []), result["pipeline"].get("postgres", [])
    if not tenths or len(stats) < 2:
        return []

    def at(rows: int) -> dict[str, int]:  # the first sample past `rows`
        return next((x for x in stats if x["rows"] >= rows), stats[-1])

    lines = [
        "",
        "| rows | rows/s | decode / COPY / counts ms per 100k | WAL MB per 1M rows |"
        " full-page images per 1M rows | checkpoints | blocks read per 1M rows |"
        " similar / area_week_cells / trip_data MB |",
        "| --- " * 8 + "|",
    ]
    previous = stats[0]
    rates = result.get("deciles", [])
    for n, tenth in enumerate(tenths):
        now = at(tenth["rows"])
        rows = max(now["rows"] - previous["rows"], 1) / 1e6
        lines.append(
            f"| {tenth['rows']:,} | {rates[n] if n < len(rates) else ''} | "
            f"{tenth['decode_ms_per_100k']} / {tenth['copy_ms_per_100k']} / "
            f"{tenth['counts_ms_per_100k']} | "
            f"{(now['wal_bytes'] - previous['wal_bytes']) / 2**20 / rows:,.0f} | "
            f"{(now['wal_fpi'] - previous['wal_fpi']) / rows:,.0f} | "
            f"{now['checkpoints'] - previous['checkpoints']} | "
            f"{(now['blks_read'] - previous['blks_read']) / rows:,.0f} | "
            f"{now['similar_bytes'] // 2**20:,} / {now['area_cells_bytes'] // 2**20:,} / "
            f"{now['trip_data_bytes'] // 2**20:,} |"
        )
        previous = now
    return lines


def deciles(timeline: list[tuple[float, int]], expected: int) -> list[int]:
    """Rows/s over each tenth of the bulk rows, from the drop (the first tenth includes the
    time to the first commit)."""
    out, t_prev = [], 0.0
    for k in range(1, 11):
        target = expected * k / 10
        t = next((t for t, n in timeline if n >= target), None)
        if t is None:
            break
        out.append(round((expected / 10) / max(t - t_prev, 1e-6)))
        t_prev = t
    return out


def rate_over_time(
    timeline: list[tuple[float, int]], window: float = 60.0
) -> list[tuple[int, int]]:
    """(rows committed, rows/s over the preceding window) along the run."""
    out, j = [], 0
    for t, n in timeline:
        while timeline[j][0] < t - window:
            j += 1
        t0, n0 = timeline[j]
        if t - t0 >= window / 2:
            out.append((n, round((n - n0) / (t - t0))))
    return out


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = result["pipeline"]["timeline"]
    fig, (a, r, b) = plt.subplots(1, 3, figsize=(15, 4))
    a.plot([t for t, _ in timeline], [n for _, n in timeline])
    a.set(title="rows committed", xlabel="seconds since drop", ylabel="rows")
    rates = rate_over_time(timeline)
    r.plot([n for n, _ in rates], [x for _, x in rates])
    r.set(title="ingest rate (60 s window)", xlabel="rows committed", ylabel="rows/s")
    b.hist(result["pipeline"]["latency_s"]["samples"] or [0], bins=10)
    b.set(title="small-file latency (drop -> committed)", xlabel="seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def free_disk(settings: Settings, files: list[Path]) -> None:
    """Once the floor has decoded them: the bench's generated files (and their hard links in
    done/) and the topic's records go, all of them in Postgres by now. 100M rows fit the
    disk then: 12 GB of CSV and 4 GB of Kafka log less while the floor writes."""
    for path in files:
        done = Path(settings.paths.done) / path.name
        if done.exists() and path.exists() and done.samefile(path):
            done.unlink()
        path.unlink(missing_ok=True)
    try:
        client = consumer(settings.kafka)
        try:
            topic = settings.kafka.topic
            parts = [TopicPartition(topic, p) for p in client.partitions_for_topic(topic) or ()]
            ends = client.end_offsets(parts)
        finally:
            client.close()
        admin = admin_client(settings.kafka)
        try:
            admin.delete_records({tp: end for tp, end in ends.items() if end})
        finally:
            admin.close()
    except Exception as e:  # the floor does not need it; say so and go on
        logger.warning("the topic's records stay on disk: %s", e)


def run_bench(settings: Settings, args: argparse.Namespace, *, start_stack: bool = True) -> int:
    from tripstream.stack.local import LocalStack

    rows, files = (5000, 2) if args.smoke else (args.rows, args.files)
    probes = 2 if args.smoke else max(5, min(20, rows // 200_000))
    work = Path(settings.paths.state_dir) / "bench"
    shutil.rmtree(work, ignore_errors=True)
    data = generate_files(work / "data", rows=rows, files=files, seed=int(time.time()) % 10000)
    stack = LocalStack(settings)
    if start_stack:
        stack.up()
    result: dict[str, Any] = {
        "stamp": dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"),
        "rows": rows,
        "files": files,
        "valid": rows,
    }
    result["ceiling"] = ceiling(settings.database.url, data)
    checkpoint(settings.database.url)
    result["warmup_s"] = warm_up(settings, work)
    logger.info("warm-up file committed %.2f s after its drop", result["warmup_s"])
    postgres = postmaster_pid(settings.database.url)
    watch = MemoryWatch(stack.run_dir, postgres)
    watch.start()
    result["pipeline"] = pipeline(
        settings, data, rows, probes, work, timeout=max(120.0, rows / 10_000)
    )
    watch.stop()
    result["peak_rss_mb"] = watch.peak_mb
    result["peak_pss_mb"] = watch.peak_pss_mb
    result["worker_pss_mb"] = watch.worker_pss_mb
    result["stack_pss_mb"] = watch.stack_pss_mb
    result["cpu_s"] = watch.cpu_seconds()
    result["ratio"] = result["pipeline"]["rows_per_s"] / max(result["ceiling"]["rows_per_s"], 1)
    result["deciles"] = deciles(result["pipeline"]["timeline"], rows)
    result["phases"] = phases(settings.database.url, rows)
    result["queries_ms"] = query_latencies(settings)
    result["exactness"] = exactness(settings)
    if not args.no_floor:
        checkpoint(settings.database.url)
        floor_cpu: dict[str, float] = {}
        result["floor"] = measure_floor(
            settings.database.url,
            data,
            work / "floor",
            chunk_rows=settings.producer.chunk_rows,
            rows_per_batch=settings.producer.chunk_rows
            * settings.streaming.max_records_per_trigger,
            writers=settings.streaming.bulk_queries,
            decoded_hook=lambda: free_disk(settings, data),
            watched=lambda: cpu_watched(stack.run_dir, postgres, floor_cpu),
        )
        result["floor"]["cpu_s"] = floor_cpu
        result["floor_ratio"] = result["pipeline"]["rows_per_s"] / result["floor"]["rows_per_s"]
    out = Path(args.out)
    summary = write_report(result, out if out.is_absolute() else PROJECT_ROOT / out)
    print(summary.read_text())
    ok = result["pipeline"]["complete"] and all(
        v == 0
        for k, v in result["exactness"].items()
        if isinstance(v, int) and k != "trip_data_rows"
    )
    return 0 if ok else 1
