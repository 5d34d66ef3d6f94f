"""The embedded Postgres lets in only who has its generated secrets: scram-sha-256 on TCP
and on the socket, no `trust`; the pipeline's own URLs carry the passfile."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg2
import pytest

from tripstream.settings import load_settings
from tripstream.stack.postgres import READER, SUPERUSER, EmbeddedPostgres

pytestmark = pytest.mark.integration
ROLES = ("tripstream", READER, SUPERUSER)


def connect_as(pg: EmbeddedPostgres, role: str, **extra: str) -> None:
    psycopg2.connect(
        host="127.0.0.1", port=pg.port, user=role, dbname="postgres", connect_timeout=5, **extra
    ).close()


@pytest.mark.parametrize("role", ROLES)
def test_no_role_gets_in_without_its_secret(
    postgres: EmbeddedPostgres, role: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))  # root, without the secret
    with pytest.raises(psycopg2.OperationalError, match="password"):
        connect_as(postgres, role)
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect_as(postgres, role, password="guess")
    connect_as(postgres, role, passfile=str(postgres.passfile))  # with it: in


def test_the_secrets_are_the_owners_alone_and_nothing_is_trusted(
    postgres: EmbeddedPostgres,
) -> None:
    assert postgres.passfile.stat().st_mode & 0o777 == 0o600
    hba = (postgres.data / "pg_hba.conf").read_text()
    rules = [ln.split() for ln in hba.splitlines() if ln.strip() and not ln.startswith("#")]
    assert rules and {r[-1] for r in rules} == {"scram-sha-256"}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another local user")
@pytest.mark.parametrize("role", ROLES)
def test_another_local_user_cannot_connect_over_tcp_or_the_socket(
    postgres: EmbeddedPostgres, role: str
) -> None:
    psql = Path(postgres._bin("psql"))  # the private copy, which 'nobody' can run
    for host in ("127.0.0.1", str(postgres.runtime / "sock")):
        done = subprocess.run(
            [
                str(psql),
                f"host={host} port={postgres.port} user={role} dbname=postgres "
                f"passfile={postgres.passfile} connect_timeout=5",
                "-c",
                "SELECT 1",
            ],
            user="daemon",  # not the owner of the secrets, nor the server's own user
            capture_output=True,
            text=True,
            timeout=30,
            env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert done.returncode != 0, (host, done.stdout)
        assert "password" in done.stderr or "Permission denied" in done.stderr, done.stderr


def test_the_pipelines_urls_carry_the_passfile_and_connect(postgres: EmbeddedPostgres) -> None:
    settings = load_settings({"TRIPSTREAM_PATHS_STATE_DIR": str(postgres.root.parent)})
    assert f"passfile={postgres.passfile}" in settings.database.url
    assert f"passfile={postgres.passfile}" in settings.database.reader
    external = load_settings({"TRIPSTREAM_DATABASE_EMBEDDED": "false"})
    assert "passfile" not in external.database.url
    url = postgres.url.replace("tripstream@", f"{READER}@")
    conn = psycopg2.connect(url)  # the reader, as the CLI and the dashboard connect
    with conn.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone() == (READER,)
    conn.close()
