"""The publisher refuses an unknown payload codec at start, naming the setting (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from producer.publisher import Publisher
from tripstream.errors import SetupError
from tripstream.settings import load_settings


def test_an_unknown_compression_setting_stops_the_producer_at_start() -> None:
    settings = load_settings()
    producer = replace(settings.producer, compression="snappy")
    with pytest.raises(SetupError, match="TRIPSTREAM_PRODUCER_COMPRESSION=zstd"):
        Publisher(settings.kafka, producer)  # refused before any connection is tried
