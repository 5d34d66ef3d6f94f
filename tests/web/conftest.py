"""The dashboard served for real (uvicorn on a free loopback port), against the test
Postgres as the read-only role."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import uvicorn

from tests.conftest import wait_for
from tripstream.settings import Settings
from tripstream.stack import procs
from tripstream.web.app import create_app


@pytest.fixture
def dashboard(settings: Settings) -> Iterator[str]:
    """The dashboard's base URL."""
    port = procs.free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 30, "the dashboard to listen")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive(), "the dashboard did not shut down within 10 s"
