"""`python -m producer`: watch the inbox and publish trip files to Kafka."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from producer.service import run_producer
from tripstream.errors import TripstreamError
from tripstream.settings import load_settings


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)  # per-connection chatter
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        run_producer(load_settings(), stop)
    except TripstreamError as e:
        logging.getLogger("producer").error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
