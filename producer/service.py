"""The producer's main loop: watcher -> ingester, with periodic reconciliation."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from producer.chunks import warm_up as warm_up_chunks
from producer.ingest import Ingester
from producer.ledger import Ledger
from producer.publisher import Publisher
from producer.watcher import InboxWatcher, classify
from tripstream.db import apply_schema, retry
from tripstream.errors import TransientError
from tripstream.settings import Settings
from tripstream.stack.procs import mark_ready

logger = logging.getLogger(__name__)
RECONCILE_EVERY_S = 5.0


def run_producer(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run until `stop` is set (or forever)."""
    stop = stop or threading.Event()
    paths = settings.paths
    paths.inbox.mkdir(parents=True, exist_ok=True)
    for folder in (paths.done, paths.rejected):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # files then stay in the inbox and are retried
            logger.error(
                "cannot create %s: %s. Files stay in %s until it is fixed; try "
                "freeing disk space or fixing permissions.",
                folder,
                e.strerror,
                paths.inbox,
            )
    retry(lambda: apply_schema(settings.database.url), what="apply schema", attempts=10)
    publisher = retry(
        lambda: Publisher(settings.kafka, settings.producer), what="connect to Kafka", attempts=10
    )
    publisher.warm_up()
    warm_up_chunks()
    ingester = Ingester(settings, Ledger(settings.database.url), publisher)
    ingester.stop = stop
    watcher = InboxWatcher(paths.inbox, settings.producer.settle_seconds)
    busy: set[Path] = set()  # files being ingested (an express file runs inside a bulk one)
    ingester.make_way = lambda: _express_files(ingester, watcher, busy)
    watcher.start()
    logger.info("watching %s (done: %s, rejected: %s)", paths.inbox, paths.done, paths.rejected)
    mark_ready()  # `tripstream up` waits for it
    last_scan = last_reconcile = 0.0
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now - last_scan >= settings.producer.scan_interval_seconds:
                watcher.scan()
                last_scan = now
            for path in sorted(watcher.ready(), key=_size):  # small files first
                if stop.is_set():
                    break
                _ingest_one(ingester, watcher, path, busy)
            if now - last_reconcile >= RECONCILE_EVERY_S:
                last_reconcile = now
                try:
                    ingester.reconcile()
                except TransientError as e:
                    logger.warning("reconciliation postponed: %s", e)
            watcher.wait(timeout=min(settings.producer.scan_interval_seconds, 0.5))
    finally:
        watcher.stop()
        ingester.close()
        publisher.close()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _express_files(ingester: Ingester, watcher: InboxWatcher, busy: set[Path]) -> None:
    """While a bulk file is being published or held back by backpressure, publish the
    small files that are ready (they take the express lane and are never held back)."""
    watcher.wait(timeout=0.0)  # take in the file events that arrived meanwhile
    for path in watcher.ready():
        if path not in busy and ingester.is_express(_size(path)):
            _ingest_one(ingester, watcher, path, busy)


def _ingest_one(ingester: Ingester, watcher: InboxWatcher, path: Path, busy: set[Path]) -> None:
    busy.add(path)
    try:
        if classify(path) == "reject":
            ingester.reject_unsupported(path)
        else:
            ingester.ingest(path)
        watcher.finished(path)
    except TransientError as e:
        delay = watcher.failed(path)
        logger.error("%s: %s (retrying in %.0fs)", path.name, e, delay)
    except Exception:
        delay = watcher.failed(path)
        logger.exception("%s: unexpected error; retrying in %.0fs", path.name, delay)
    finally:
        busy.discard(path)
