"""PostgreSQL helpers: connect, apply the schema in sql/, retry transient errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.errorcodes
import psycopg2.extensions

from tripstream import SQL_DIR
from tripstream.errors import TransientError

logger = logging.getLogger(__name__)
T = TypeVar("T")

# SQLSTATE classes that mean "try again": connection exceptions (08), insufficient
# resources (53), operator intervention / shutdown (57), serialization/deadlock (40).
_TRANSIENT_CLASSES = ("08", "53", "57", "40")


def is_transient(error: BaseException) -> bool:
    """True for errors worth a retry: lost connections, shutdowns, deadlocks."""
    if isinstance(error, TransientError):
        return True
    if isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError):
        code: str | None = getattr(error, "pgcode", None)
        return code is None or code[:2] in _TRANSIENT_CLASSES
    code = getattr(error, "pgcode", None)
    return code is not None and code[:2] in _TRANSIENT_CLASSES


def database_url(url: str, name: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def connect(url: str, *, application: str = "tripstream") -> psycopg2.extensions.connection:
    return psycopg2.connect(url, application_name=application, connect_timeout=5)


@contextmanager
def transaction(
    url: str, *, application: str = "tripstream"
) -> Iterator[psycopg2.extensions.cursor]:
    """One connection, one transaction: commit on success, roll back on any error."""
    conn = connect(url, application=application)
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def retry(action: Callable[[], T], *, what: str, attempts: int = 8, first_delay: float = 0.2) -> T:
    """Run action, retrying transient errors with exponential backoff; re-raise others."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as e:
            if not is_transient(e) or attempt == attempts:
                raise
            logger.warning(
                "%s failed (attempt %s/%s), retrying in %.1fs: %s",
                what,
                attempt,
                attempts,
                delay,
                str(e).strip(),
            )
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
    raise AssertionError("unreachable")


def schema_files() -> list[str]:
    return sorted(str(p) for p in (SQL_DIR / "schema").glob("*.sql"))


def apply_schema(url: str) -> None:
    """Apply every sql/schema/*.sql in order; idempotent, serialised by an advisory lock."""
    with transaction(url, application="tripstream-schema") as cur:
        cur.execute("SELECT pg_advisory_xact_lock(7411)")
        for path in schema_files():
            with open(path, encoding="utf-8") as f:
                cur.execute(f.read())
    logger.info("schema applied (%s files)", len(schema_files()))


def load_query(name: str) -> str:
    """SQL text of sql/queries/<name>.sql."""
    return (SQL_DIR / "queries" / f"{name}.sql").read_text(encoding="utf-8")
