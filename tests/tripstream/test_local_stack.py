"""`make run` / `make down`: the whole local stack from one call (embedded Postgres, broker,
Spark master and two workers, producer, streaming job, all on free loopback ports), and its
state kept across a restart."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.conftest import make_settings, recount_differences, wait_for
from tripstream.generate import generate_files
from tripstream.settings import Settings, settings_to_env
from tripstream.stack import procs
from tripstream.stack.local import LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    root = Path(tempfile.mkdtemp(prefix="tripstream-stack-"))  # 0700, like a home folder
    settings = make_settings(
        root,
        f"postgresql://tripstream@127.0.0.1:{procs.free_port()}/tripstream",
        f"127.0.0.1:{procs.free_port()}",
        f"spark://127.0.0.1:{procs.free_port()}",
        "trips",
        TRIPSTREAM_SPARK_MASTER_UI_PORT=str(procs.free_port()),
        TRIPSTREAM_KAFKA_CONTROLLER_PORT=str(procs.free_port()),
        TRIPSTREAM_WEB_PORT=str(procs.free_port()),
    )
    # The stack hands its own environment to the producer and the streaming job.
    for key, value in settings_to_env(settings).items():
        monkeypatch.setenv(key, value)
    local = LocalStack(settings)
    try:
        yield local
    finally:
        local.down()
        local.purge()
        shutil.rmtree(root, ignore_errors=True)


def committed(settings: Settings) -> tuple[int, list[tuple[str, str]]]:
    conn = psycopg2.connect(settings.database.url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM trip_data")
            (rows,) = cur.fetchone()  # type: ignore[misc]
            cur.execute("SELECT name, state FROM ingest_files ORDER BY name")
            return int(rows), cur.fetchall()
    finally:
        conn.close()


def test_the_stack_comes_up_ingests_and_keeps_its_state_across_down_and_up(
    stack: LocalStack, sample_csv: Path, tmp_path: Path
) -> None:
    s = stack.settings
    said: list[str] = []
    assert stack.up(progress=said.append) is True  # returns once ready to ingest
    assert said and all(line.startswith("  starting: waiting for") for line in said)
    assert {"producer", "streaming"} <= {
        p.name.removesuffix(".ready") for p in stack.run_dir.glob("*.ready")
    }
    assert procs.port_open(s.web.port)  # the dashboard is up too
    # the executors' Kafka read was warmed through the side topic before "ready"
    job_log = (stack.run_dir / "streaming.log").read_text()
    assert "created topic trips-warmup" in job_log
    assert "without a Kafka read" not in job_log
    dropped = time.monotonic()
    shutil.copy(sample_csv, s.paths.inbox / "trips.csv")
    wait_for(lambda: committed(s)[0] == 100, 60, "the sample to be committed")
    print(f"first file committed {time.monotonic() - dropped:.2f} s after `up` returned")
    assert stack.up() is False  # a second `make run` starts nothing
    assert set(stack.running()) >= {
        "postgres",
        "broker",
        "spark-master",
        "producer",
        "streaming",
        "web",
    }

    assert set(stack.down()) >= {"producer", "streaming", "web", "spark", "broker", "postgres"}
    assert stack.running() == {}

    assert stack.up() is True
    assert committed(s) == (100, [("trips.csv", "committed")])  # the state came back
    (more,) = generate_files(tmp_path / "gen", rows=50, files=1, seed=3, prefix="more")
    more.rename(s.paths.inbox / more.name)
    wait_for(lambda: committed(s)[0] == 150, 240, "a file dropped after the restart")
    rows, files = committed(s)
    assert files == [(more.name, "committed"), ("trips.csv", "committed")]
    conn = psycopg2.connect(s.database.url)
    try:
        with conn.cursor() as cur:
            differences = recount_differences(cur)
    finally:
        conn.close()
    assert set(differences.values()) == {0}
