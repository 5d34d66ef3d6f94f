"""tripstream: watched folder -> Kafka -> Spark Structured Streaming -> PostgreSQL."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
CONFIG_DIR = PROJECT_ROOT / "config"

__all__ = ["CONFIG_DIR", "PROJECT_ROOT", "SQL_DIR"]
