"""`tripstream up` / `down`: the whole pipeline on one machine, state under .tripstream/."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tripstream import PROJECT_ROOT
from tripstream.db import apply_schema, retry
from tripstream.errors import SetupError
from tripstream.settings import Settings
from tripstream.stack import procs
from tripstream.stack.broker import KafkaBroker, embedded_broker, ensure_topic
from tripstream.stack.maven import connector_jars
from tripstream.stack.postgres import EmbeddedPostgres
from tripstream.stack.spark import SparkCluster, java_binary, spark_env

logger = logging.getLogger(__name__)
JOBS = ("producer", "streaming", "web")


@dataclass(frozen=True)
class LocalStack:
    settings: Settings

    @property
    def state(self) -> Path:
        return self.settings.paths.state_dir

    @property
    def run_dir(self) -> Path:
        return self.state / "run"

    def postgres(self) -> EmbeddedPostgres:
        db = self.settings.database
        return EmbeddedPostgres(self.state / "postgres", db.port, db.user, db.dbname)

    def broker(self) -> KafkaBroker:
        return embedded_broker(self.settings.kafka, self.state, self.settings.paths.jar_cache)

    def spark(self) -> SparkCluster:
        s = self.settings.spark
        return SparkCluster(
            self.state / "spark",
            s.port,
            s.master_ui_port,
            s.workers,
            s.worker_memory,
            s.worker_cores,
        )

    def running(self) -> dict[str, int]:
        names = [*JOBS, "broker", "spark-master"] + [
            f"spark-worker-{n}" for n in range(1, self.settings.spark.workers + 1)
        ]
        found = {n: pid for n in names if (pid := procs.read_pid(self.run_dir, n))}
        pg = self.postgres()
        if self.settings.database.embedded and (pg.data / "postmaster.pid").exists():
            pid = int((pg.data / "postmaster.pid").read_text().split()[0])
            if procs.alive(pid):
                found["postgres"] = pid
        return found

    def up(self, progress: Callable[[str], None] = logger.info) -> bool:
        """Start everything and wait until it is ready to ingest; False (and nothing
        started) if it is already up."""
        running = self.running()
        if any(name in running for name in JOBS):
            return False
        s = self.settings
        self.state.mkdir(parents=True, exist_ok=True)
        env = spark_env(self.state)  # fails early, with advice, if Java is missing
        procs.require_free(s.web.port, "the dashboard", "TRIPSTREAM_WEB_PORT")
        if s.database.embedded and "postgres" not in running:
            procs.require_free(s.database.port, "PostgreSQL", "TRIPSTREAM_DATABASE_URL")
            self.postgres().start()
        retry(lambda: apply_schema(s.database.url), what="apply schema", attempts=10)
        java = java_binary(self.state)
        if s.kafka.embedded and "broker" not in running:
            self.broker().start(self.run_dir, env, java)
        retry(lambda: ensure_topic(s.kafka), what="create the topic", attempts=10)
        if s.spark.embedded and "spark-master" not in running:
            procs.require_free(s.spark.port, "the Spark master", "TRIPSTREAM_SPARK_MASTER")
            procs.require_free(
                s.spark.master_ui_port, "the Spark master UI", "TRIPSTREAM_SPARK_MASTER_UI_PORT"
            )
            self.spark().start(self.run_dir, self.state)
        for folder in (s.paths.inbox, s.paths.done, s.paths.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        procs.spawn(
            "producer",
            [python, "-m", "producer"],
            self.run_dir,
            env=self._ready_env(os.environ, "producer"),
            cwd=PROJECT_ROOT,
        )
        procs.spawn("web", [python, "-m", "tripstream.cli", "web"], self.run_dir, env=os.environ)
        submit = str(Path(python).parent / "spark-submit")
        if not Path(submit).exists():
            raise SetupError(f"{submit} not found. Try `make install`.")
        procs.spawn(
            "streaming",
            [
                submit,
                "--master",
                s.spark.master,
                "--driver-memory",
                s.spark.driver_memory,
                "--executor-memory",
                s.spark.executor_memory,
                "--total-executor-cores",
                str(s.spark.workers * s.spark.worker_cores),
                "--conf",
                f"spark.executor.cores={s.spark.worker_cores}",
                "--jars",
                ",".join(str(j) for j in connector_jars(s.paths.jar_cache, java)),
                str(PROJECT_ROOT / "streaming" / "job.py"),
            ],
            self.run_dir,
            env=self._ready_env(env, "streaming"),
            cwd=PROJECT_ROOT,
        )
        self.wait_ready(progress)
        return True

    def _ready_env(self, env: Mapping[str, str], name: str) -> dict[str, str]:
        """The process's environment, naming the file it writes once it is ready."""
        ready = self.run_dir / f"{name}.ready"
        ready.unlink(missing_ok=True)
        return {**env, procs.READY_FILE_ENV: str(ready)}

    def wait_ready(self, progress: Callable[[str], None], timeout: float = 300.0) -> None:
        """Until the producer watches, every streaming query has started and the dashboard
        listens; a line of progress every few seconds meanwhile."""
        started = last = time.monotonic()
        while True:
            pending = [n for n in ("producer", "streaming") if not self._ready(n)]
            if not procs.port_open(self.settings.web.port):
                pending.append("web")
            if not pending:
                return
            for name in pending:
                if procs.read_pid(self.run_dir, name) is None:
                    raise SetupError(
                        f"the {name} process exited while starting. See its log: "
                        f"{self.run_dir / name}.log"
                    )
            now = time.monotonic()
            if now - started > timeout:
                raise SetupError(
                    f"{', '.join(pending)} not ready after {timeout:.0f}s. See the logs in "
                    f"{self.run_dir}/."
                )
            if now - last >= 3.0:
                progress(f"  starting: waiting for {', '.join(pending)} ({now - started:.0f} s)")
                last = now
            time.sleep(0.2)

    def _ready(self, name: str) -> bool:
        return (self.run_dir / f"{name}.ready").exists()

    def purge(self) -> None:
        """`down --purge`: the state exactly-once rests on, all of it together: the embedded
        database (and, as root, its private folder outside the clone), the embedded
        broker's log and the streaming checkpoints. Left alone, a topic or a checkpoint
        outlives the ledger it was measured against. An external database is not ours to
        delete, so then nothing goes."""
        if not self.settings.database.embedded:
            logger.warning(
                "the database is external: purge leaves it, the topic and the checkpoints"
            )
            return
        self.postgres().remove()
        if self.settings.kafka.embedded:
            shutil.rmtree(self.broker().root, ignore_errors=True)
        shutil.rmtree(self.settings.streaming.checkpoint_dir, ignore_errors=True)

    def down(self) -> list[str]:
        stopped = [n for n in JOBS if procs.stop(self.run_dir, n, timeout=30)]
        if self.settings.spark.embedded:
            self.spark().stop(self.run_dir)
            stopped.append("spark")
        if procs.stop(self.run_dir, "broker"):
            stopped.append("broker")
        pg = self.postgres()
        if self.settings.database.embedded and pg.data.exists() and pg.running():
            pg.stop()
            stopped.append("postgres")
        return stopped
