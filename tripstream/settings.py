"""One frozen, typed settings object per process: config/defaults.toml + environment.

Every key `[section] key` can be overridden by `TRIPSTREAM_<SECTION>_<KEY>`; a whole
other file by `TRIPSTREAM_CONFIG`. Relative paths resolve against the project root.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tripstream import CONFIG_DIR, PROJECT_ROOT
from tripstream.errors import SetupError

ENV_PREFIX = "TRIPSTREAM_"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str
    reader_url: str = ""
    embedded: bool = True

    @property
    def reader(self) -> str:
        """Read-only role URL: explicit, or the writer URL with user tripstream_reader."""
        if self.reader_url:
            return self.reader_url
        parts = urlsplit(self.url)
        host = parts.hostname or "127.0.0.1"
        netloc = f"tripstream_reader@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 5432

    @property
    def dbname(self) -> str:
        return urlsplit(self.url).path.lstrip("/") or "postgres"

    @property
    def user(self) -> str:
        return urlsplit(self.url).username or "postgres"


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str
    topic: str = "trips"
    partitions: int = 3
    embedded: bool = True
    version: str = "4.1.1"
    heap: str = "512m"
    controller_port: int = 0  # 0: the broker port + 1
    retention_hours: int = 24
    replication_factor: int = 1
    express_lane_bytes: int = 1_000_000
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)  # environment only, never logged
    ssl_cafile: str = ""

    @property
    def port(self) -> int:
        return int(self.bootstrap.split(",")[0].rsplit(":", 1)[1])

    @property
    def quorum_port(self) -> int:
        return self.controller_port or self.port + 1


@dataclass(frozen=True)
class SparkSettings:
    master: str
    embedded: bool = True
    master_ui_port: int = 8100
    workers: int = 2
    worker_memory: str = "1g"
    worker_cores: int = 2
    executor_memory: str = "512m"
    driver_memory: str = "1g"

    @property
    def port(self) -> int:
        return int(self.master.rsplit(":", 1)[1])


@dataclass(frozen=True)
class PathSettings:
    state_dir: Path
    inbox: Path
    done: Path
    rejected: Path
    jar_cache: Path = Path("~/.cache/tripstream/maven").expanduser()


@dataclass(frozen=True)
class ProducerSettings:
    chunk_rows: int = 20000
    settle_seconds: float = 2.0
    reconcile_after_seconds: float = 60.0
    scan_interval_seconds: float = 1.0
    max_field_length: int = 100
    compression: str = "lz4"
    linger_ms: int = 20
    max_backlog_records: int = 25


@dataclass(frozen=True)
class StreamingSettings:
    checkpoint_dir: Path
    trigger_seconds: float = 1.0
    max_records_per_trigger: int = 5
    min_partitions: int = 1
    express_query: bool = True
    express_trigger_seconds: float = 0.25
    bulk_queries: int = 2


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8110


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings
    kafka: KafkaSettings
    spark: SparkSettings
    paths: PathSettings
    producer: ProducerSettings = field(default_factory=ProducerSettings)
    streaming: StreamingSettings = field(
        default_factory=lambda: StreamingSettings(checkpoint_dir=Path(".tripstream/checkpoints"))
    )
    web: WebSettings = field(default_factory=WebSettings)

    def replace(self, **sections: Any) -> Settings:
        return dataclasses.replace(self, **sections)


def _coerce(value: Any, kind: Any, key: str) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in {"1", "true", "yes", "on"}
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "Path":
            path = Path(str(value)).expanduser()
            return path if path.is_absolute() else PROJECT_ROOT / path
        return str(value)
    except ValueError as e:
        raise SetupError(f"setting {key}={value!r} is not a valid {kind}. Try fixing it.") from e


def _section(cls: Any, name: str, raw: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        env_key = f"{ENV_PREFIX}{name.upper()}_{f.name.upper()}"
        if env_key in env:
            values[f.name] = _coerce(env[env_key], f.type, env_key)
        elif f.name in raw:
            values[f.name] = _coerce(raw[f.name], f.type, f"[{name}] {f.name}")
    return cls(**values)


def settings_to_env(settings: Settings) -> dict[str, str]:
    """Every setting as TRIPSTREAM_<SECTION>_<KEY>: what a child process needs to load the
    same settings (the inverse of load_settings)."""
    env: dict[str, str] = {}
    for section in dataclasses.fields(settings):
        values = getattr(settings, section.name)
        for f in dataclasses.fields(values):
            env[f"{ENV_PREFIX}{section.name.upper()}_{f.name.upper()}"] = str(
                getattr(values, f.name)
            )
    return env


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read config/defaults.toml (or $TRIPSTREAM_CONFIG) and apply environment overrides."""
    env = os.environ if env is None else env
    path = Path(env.get(f"{ENV_PREFIX}CONFIG", CONFIG_DIR / "defaults.toml"))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SetupError(f"cannot read settings from {path}: {e}. Try checking the file.") from e
    sections = {
        "database": DatabaseSettings,
        "kafka": KafkaSettings,
        "spark": SparkSettings,
        "paths": PathSettings,
        "producer": ProducerSettings,
        "streaming": StreamingSettings,
        "web": WebSettings,
    }
    built = {name: _section(cls, name, raw.get(name, {}), env) for name, cls in sections.items()}
    db: DatabaseSettings = built["database"]
    if db.embedded:  # the embedded Postgres's generated passwords (tripstream/stack/postgres.py)
        passfile = built["paths"].state_dir / "postgres" / "pgpass"
        built["database"] = dataclasses.replace(
            db,
            url=with_passfile(db.url, passfile),
            reader_url=with_passfile(db.reader_url, passfile) if db.reader_url else "",
        )
    return Settings(**built)


def with_passfile(url: str, passfile: Path) -> str:
    """The URL with libpq's `passfile=` unless it carries a password or a passfile."""
    parts = urlsplit(url)
    if parts.password or "passfile=" in parts.query:
        return url
    query = "&".join(q for q in (parts.query, f"passfile={passfile}") if q)
    return urlunsplit(parts._replace(query=query))
