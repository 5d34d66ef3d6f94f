"""docker-compose.yml and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tripstream import PROJECT_ROOT

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def host_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).split(":")[-2]) for p in service.get("ports", [])}


def test_published_ports_bind_to_loopback_by_default() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), (name, port)
    assert "BIND_ADDRESS=127.0.0.1" in (PROJECT_ROOT / ".env.example").read_text()


def test_no_password_has_a_working_default_and_jupyter_needs_a_token() -> None:
    text = (PROJECT_ROOT / "docker-compose.yml").read_text()
    for key in ("POSTGRES_PASSWORD", "READER_PASSWORD", "JUPYTER_TOKEN"):
        assert re.findall(rf"\$\{{{key}(:?[-?])", text) and not re.findall(
            rf"\$\{{{key}:?-", text
        ), key  # only ${KEY:?message}: unset or empty stops compose with that message
        assert re.search(rf"^{key}=$", (PROJECT_ROOT / ".env.example").read_text(), re.M)
    jupyter = SERVICES["jupyter"]
    assert "--allow-root" not in jupyter["command"] and jupyter["user"] != "0"
    assert any(arg.startswith("--ServerApp.token=${JUPYTER_TOKEN:?") for arg in jupyter["command"])


def test_make_all_stops_with_one_line_without_a_complete_env(tmp_path: Path) -> None:
    import shutil
    import subprocess

    for name in ("Makefile", "docker-compose.yml"):
        shutil.copy(PROJECT_ROOT / name, tmp_path / name)
    missing = subprocess.run(["make", "-s", "all"], cwd=tmp_path, capture_output=True, text=True)
    assert missing.returncode != 0 and "cp .env.example .env" in missing.stdout
    (tmp_path / ".env").write_text("POSTGRES_PASSWORD=x\nREADER_PASSWORD=\nJUPYTER_TOKEN=t\n")
    empty = subprocess.run(["make", "-s", "all"], cwd=tmp_path, capture_output=True, text=True)
    assert empty.returncode != 0
    assert (
        empty.stdout.strip()
        == "make all: READER_PASSWORD is empty in .env; set it (no default works)"
    )


def test_the_cluster_has_every_service() -> None:
    assert set(SERVICES) >= {
        "postgres",
        "kafka",
        "spark-master",
        "spark-worker-1",
        "spark-worker-2",
        "producer",
        "streaming",
        "jupyter",
    }


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service.get("image", "")
        assert re.search(r":\d+(\.\d+)+", image), f"{name} image {image!r} is not pinned"
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert "KRaft" in (PROJECT_ROOT / "docker-compose.yml").read_text()
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_host_ports_are_the_documented_ones() -> None:
    assert 8100 in host_ports(SERVICES["spark-master"])
    assert 9999 in host_ports(SERVICES["jupyter"])
    all_ports = [p for s in SERVICES.values() for p in host_ports(s)]
    assert len(all_ports) == len(set(all_ports)), "two services publish the same host port"
    assert 5432 not in all_ports and 9092 not in all_ports  # non-standard, no clashes


@pytest.mark.parametrize("worker", ["spark-worker-1", "spark-worker-2"])
def test_workers_have_one_gigabyte_and_two_task_slots(worker: str) -> None:
    command = SERVICES[worker]["command"]
    assert command[command.index("--memory") + 1] == "1g"
    assert command[command.index("--cores") + 1] == "2"  # as config/defaults.toml
    assert command[-1] == "spark://spark-master:7077"


def test_streaming_job_is_submitted_to_the_master() -> None:
    command = SERVICES["streaming"]["command"]
    assert command == ["python", "-m", "streaming"]  # a client-mode driver
    env = SERVICES["streaming"]["environment"]
    assert env["TRIPSTREAM_SPARK_MASTER"] == "spark://spark-master:7077"


def test_network_volumes_and_health_ordering() -> None:
    assert COMPOSE["networks"]["develop"]["name"] == "develop"
    for name, service in SERVICES.items():
        assert "develop" in service["networks"], name
    assert "pgdata" in COMPOSE["volumes"]
    assert SERVICES["producer"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in SERVICES["postgres"] and "healthcheck" in SERVICES["kafka"]
    assert "./data:/data" in SERVICES["producer"]["volumes"]


def test_credentials_come_from_env_not_code() -> None:
    assert "${POSTGRES_PASSWORD:?" in SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert (PROJECT_ROOT / ".env.example").exists()
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()


def test_every_referenced_path_exists() -> None:
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                path = PROJECT_ROOT / source
                assert path.exists() or source == "./data", source
        for arg in service.get("command", []):
            if isinstance(arg, str) and arg.startswith("/app/"):
                assert (PROJECT_ROOT / arg.removeprefix("/app/")).exists(), arg
    for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (PROJECT_ROOT / source).exists(), source


def test_app_services_share_settings_keys_with_the_embedded_path() -> None:
    env = SERVICES["producer"]["environment"]
    for key in ("TRIPSTREAM_DATABASE_URL", "TRIPSTREAM_KAFKA_BOOTSTRAP", "TRIPSTREAM_SPARK_MASTER"):
        assert key in env
    assert Path(PROJECT_ROOT / "config" / "defaults.toml").exists()


def test_queries_read_as_the_read_only_role_with_a_password_from_env() -> None:
    app_env = SERVICES["streaming"]["environment"]
    reader = app_env["TRIPSTREAM_DATABASE_READER_URL"]
    assert reader.startswith("postgresql://tripstream_reader:${READER_PASSWORD")
    assert "${READER_PASSWORD" in SERVICES["postgres"]["environment"]["READER_PASSWORD"]
    assert "READER_PASSWORD=" in (PROJECT_ROOT / ".env.example").read_text()
    # the postgres image runs executable *.sh init scripts; it must set that password
    script = PROJECT_ROOT / "sql" / "schema" / "900_reader_password.sh"
    assert script.stat().st_mode & 0o111
    assert "ALTER ROLE tripstream_reader PASSWORD :'pw'" in script.read_text()
    assert any(v.startswith("./sql/schema:") for v in SERVICES["postgres"]["volumes"])
    assert "settings.database.reader" in (PROJECT_ROOT / "notebooks/live_results.ipynb").read_text()
