"""The LISTEN thread behind the dashboard's pushed status."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import wait_for
from tripstream.settings import Settings
from tripstream.web.events import KEEPALIVE_S, Hub

pytestmark = pytest.mark.integration


def test_the_listen_thread_ends_as_soon_as_the_app_stops(settings: Settings) -> None:
    """stop() wakes the thread out of its select(): it must not sleep on until the next
    keepalive (15 s) and outlive the app with its connection open."""
    hub = Hub(settings.database.url)
    loop = asyncio.new_event_loop()
    try:
        hub.start(loop)
        wait_for(lambda: hub.db_up, 30, "the LISTEN connection")
        hub.stop()
        assert not hub._thread.is_alive(), f"still in select(), up to {KEEPALIVE_S} s more"
    finally:
        loop.close()
