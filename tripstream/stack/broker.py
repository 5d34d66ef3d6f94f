"""Apache Kafka, embedded: one KRaft node (broker + controller) on loopback, from the jars
of `org.apache.kafka:kafka_2.13` (tripstream/stack/maven.py), no tarball and no Docker.

    <root>/server.properties   written at each start from the settings
    <root>/data/               the log dirs and KRaft metadata, formatted once
    <run_dir>/<name>.log        the broker's log (log4j2 config: config/kafka-log4j2.properties)

Also topic set-up, for the embedded broker and an external one alike.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from tripstream import CONFIG_DIR
from tripstream.errors import SetupError
from tripstream.kafka_clients import admin_client
from tripstream.settings import KafkaSettings
from tripstream.stack import maven, procs

logger = logging.getLogger(__name__)
LOG_CONFIG = CONFIG_DIR / "kafka-log4j2.properties"
# Kafka's own bin/kafka-run-class.sh flags, with a bounded heap.
JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


def cluster_id() -> str:
    """A KRaft cluster id as `kafka-storage.sh random-uuid` makes one (base64url of 16
    random bytes; never starting with '-', which the tool would take for an option)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


@dataclass(frozen=True)
class KafkaBroker:
    root: Path
    port: int
    controller_port: int
    jar_cache: Path
    version: str = maven.KAFKA_VERSION
    heap: str = "512m"
    retention_hours: int = 24
    name: str = "broker"
    # A second listener, SASL_PLAINTEXT with SCRAM-SHA-256, and its users (tests).
    scram_port: int = 0
    scram_users: tuple[tuple[str, str], ...] = ()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def scram_bootstrap(self) -> str:
        return f"127.0.0.1:{self.scram_port}"

    def properties(self) -> dict[str, str]:
        listeners = {"PLAINTEXT": self.port, "CONTROLLER": self.controller_port}
        protocols = {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT"}
        props = {}
        if self.scram_port:
            listeners["SASL_PLAINTEXT"] = self.scram_port
            protocols["SASL_PLAINTEXT"] = "SASL_PLAINTEXT"
            props = {
                "sasl.enabled.mechanisms": "SCRAM-SHA-256",
                "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                ),
            }
        advertised = {n: p for n, p in listeners.items() if n != "CONTROLLER"}
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in listeners.items()),
            "advertised.listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in advertised.items()),
            "listener.security.protocol.map": ",".join(f"{n}:{p}" for n, p in protocols.items()),
            "log.dirs": str(self.root / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": str(self.retention_hours),
            "message.max.bytes": str(16 << 20),  # the producer's max_request_size
            **props,
        }

    def _java(self, java: str, main: str, *args: str) -> list[str]:
        jars = maven.resolve(maven.kafka_broker_closure(self.version), self.jar_cache, java)
        classpath = str(jars[0].parent / "*")
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={LOG_CONFIG}",
            "-cp",
            classpath,
            main,
            *args,
        ]

    def _format(self, java: str, config: Path) -> None:
        """Format the storage once (KRaft needs a cluster id and the controller voter)."""
        if (self.root / "data" / "meta.properties").exists():
            return
        argv = self._java(java, "kafka.tools.StorageTool", "format", "--standalone")
        argv += ["-t", cluster_id(), "-c", str(config)]
        for user, password in self.scram_users:
            argv += ["--add-scram", f"SCRAM-SHA-256=[name={user},password={password}]"]
        done = subprocess.run(  # noqa: S603 - argv built here
            argv, capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise SetupError(
                f"formatting the Kafka storage in {self.root / 'data'} failed: "
                f"{(done.stdout + done.stderr).strip()[-400:]}. Try removing that folder."
            )

    def start(self, run_dir: Path, env: Mapping[str, str], java: str) -> None:
        for port, setting in (
            (self.port, "TRIPSTREAM_KAFKA_BOOTSTRAP"),
            (self.controller_port, "TRIPSTREAM_KAFKA_CONTROLLER_PORT"),
        ):
            procs.require_free(port, "the Kafka broker", setting)
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        self._format(java, config)
        proc = procs.spawn(
            self.name, self._java(java, "kafka.Kafka", str(config)), run_dir, env=env
        )
        log = run_dir / f"{self.name}.log"

        def ready() -> bool:
            if proc.poll() is not None:
                raise SetupError(
                    f"the Kafka broker exited with code {proc.returncode} while starting. "
                    f"See its log: {log}"
                )
            return procs.port_open(self.port)

        procs.wait_until(ready, timeout=90, what=f"Kafka broker on port {self.port}", log=log)
        logger.info("Apache Kafka %s on %s (log %s)", self.version, self.bootstrap, log)


def embedded_broker(kafka: KafkaSettings, state_dir: Path, jar_cache: Path) -> KafkaBroker:
    return KafkaBroker(
        state_dir / "broker",
        kafka.port,
        kafka.quorum_port,
        jar_cache,
        version=kafka.version,
        heap=kafka.heap,
        retention_hours=kafka.retention_hours,
    )


def ensure_topic(kafka: KafkaSettings, partitions: int | None = None) -> None:
    """Create the topic (kafka.partitions, retention kafka.retention_hours) if it does not
    exist yet."""
    admin = admin_client(kafka)
    count = partitions or kafka.partitions
    retention = str(kafka.retention_hours * 3600 * 1000)
    try:
        admin.create_topics(
            [
                NewTopic(
                    kafka.topic,
                    num_partitions=count,
                    replication_factor=kafka.replication_factor,
                    topic_configs={"retention.ms": retention},
                )
            ]
        )
        logger.info("created topic %s with %s partitions", kafka.topic, count)
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
