"""Status changes, pushed: one LISTEN connection (the same `tripstream_status` channel as
`tripstream status --follow`) fans out to every browser's Server-Sent Events stream.

A thread holds the connection and sleeps in select() on its socket and on a wake-up socket
that stop() writes to, so the app shuts down at once: no polling. When the
database goes away it tells every stream (`db` down), reconnects with backoff, and when
it is back tells them again (`db` up), so each page fetches a fresh snapshot: the catch-up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
import threading
from typing import Any

import psycopg2
import psycopg2.extensions

from tripstream.db import connect
from tripstream.status import CHANNEL

logger = logging.getLogger(__name__)
KEEPALIVE_S = 15.0


class Hub:
    """Subscribers' queues, fed from the LISTEN thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.db_up = False
        self.db_error = "not connected yet"
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name="tripstream-listen", daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake_w.send(b"x")  # out of select() now, not at the next keepalive
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._wake_r.close()
            self._wake_w.close()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._queues.discard(queue)

    def publish(self, event: dict[str, Any]) -> None:
        """From the LISTEN thread: hand the event to every subscriber's loop."""
        if self._loop is None:
            return
        for queue in list(self._queues):
            self._loop.call_soon_threadsafe(_offer, queue, event)

    def _set_db(self, up: bool, error: str = "") -> None:
        if up != self.db_up:
            self.db_up, self.db_error = up, error
            self.publish({"kind": "db", "up": up, "error": error})

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                conn = connect(self.url, application="tripstream-web")
                conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
                with conn.cursor() as cur:
                    cur.execute(f"LISTEN {CHANNEL}")
                self._set_db(True)
                delay = 0.5
                self._listen(conn)
                conn.close()
            except psycopg2.Error as e:
                message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                if self.db_up:
                    logger.warning("database connection lost (%s); reconnecting", message)
                self._set_db(False, message)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _listen(self, conn: psycopg2.extensions.connection) -> None:
        wake = self._wake_r.fileno()
        while not self._stop.is_set():
            ready, _, _ = select.select([conn.fileno(), wake], [], [], KEEPALIVE_S)
            if not ready:
                with conn.cursor() as cur:  # detects a server that went away
                    cur.execute("SELECT 1")
                continue
            if wake in ready:
                return
            conn.poll()
            while conn.notifies:
                self.publish(with_text_ids(json.loads(conn.notifies.pop(0).payload)))


def with_text_ids(event: dict[str, Any]) -> dict[str, Any]:
    """File ids as text: they are 64-bit, and a browser's numbers keep 53 bits."""
    if "file_id" in event:
        event["file_id"] = str(event["file_id"])
    for f in event.get("files", []):
        f["file_id"] = str(f["file_id"])
    return event


def _offer(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
    if queue.full():  # a stalled browser: drop its oldest event, it catches up on reconnect
        queue.get_nowait()
    queue.put_nowait(event)
