"""The CLI as a user runs it: answers on stdout, nothing on stderr on a healthy stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_through_writer
from tripstream.settings import Settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "argv",
    [
        ["query", "latest-datasource"],
        ["query", "regions", "--datasource", "cheap_mobile"],
        ["query", "weekly-average", "--bbox", "14.37,50.04,14.51,50.12", "--format", "json"],
        ["query", "similar", "--limit", "3"],
        ["status"],
    ],
)
def test_the_cli_answers_on_stdout_and_keeps_stderr_empty(
    settings: Settings, db: Any, sample_csv: Path, argv: list[str]
) -> None:
    load_through_writer(settings.database.url, [sample_csv])
    env = {
        "PATH": "/usr/bin:/bin",
        "TRIPSTREAM_DATABASE_URL": settings.database.url,  # with the passfile, nothing typed
        "TRIPSTREAM_PATHS_STATE_DIR": str(settings.paths.state_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tripstream.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert done.stderr == ""
