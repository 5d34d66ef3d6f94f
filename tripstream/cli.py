"""`tripstream` command line: up, down, status, query, generate, bench."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import psycopg2

from tripstream.errors import TripstreamError
from tripstream.settings import Settings, load_settings

logger = logging.getLogger("tripstream")


def _up(settings: Settings, args: argparse.Namespace) -> int:
    from tripstream.stack.local import LocalStack

    stack = LocalStack(settings)
    print("starting tripstream (the first run fetches jars from Maven Central) ...", flush=True)
    if not stack.up(progress=lambda line: print(line, flush=True)):
        running = ", ".join(f"{n} (pid {p})" for n, p in stack.running().items())
        print(f"tripstream is already running: {running}.\nStop it with `make down`.")
        return 0
    p, s = settings.paths, settings.spark
    w = settings.web
    print(
        "tripstream is ready.\n"
        f"  Drop trip CSV files into:   {p.inbox}/\n"
        f"  Published files go to:      {p.done}/   rejected ones to: {p.rejected}/\n"
        f"  Dashboard:                  http://{w.host}:{w.port}\n"
        f"  Spark master UI:            http://127.0.0.1:{s.master_ui_port}\n"
        f"  PostgreSQL:                 {settings.database.url}\n"
        f"  Kafka:                      {settings.kafka.bootstrap} topic {settings.kafka.topic}\n"
        f"  Logs:                       {stack.run_dir}/*.log\n"
        "  Watch ingestion live:       tripstream status --follow\n"
        "  Ask questions:              tripstream query --help\n"
        "  Stop everything:            make down"
    )
    return 0


def _down(settings: Settings, args: argparse.Namespace) -> int:
    from tripstream.stack.local import LocalStack

    stack = LocalStack(settings)
    stopped = stack.down()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    if args.purge:
        stack.purge()
        print("removed the embedded database's data and secrets")
    return 0


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from tripstream.status import follow, show

    if args.follow:
        return follow(settings, args)
    return show(settings, args)


def _query(settings: Settings, args: argparse.Namespace) -> int:
    from tripstream.query import run_query

    return run_query(settings, args)


def _generate(settings: Settings, args: argparse.Namespace) -> int:
    from tripstream.generate import generate_files

    generate_files(
        args.out_dir, rows=args.rows, files=args.files, seed=args.seed, bad_share=args.bad_share
    )
    return 0


def _bench(settings: Settings, args: argparse.Namespace) -> int:
    from tripstream.bench import run_bench

    return run_bench(settings, args)


def _web(settings: Settings, args: argparse.Namespace) -> int:
    from tripstream.web.app import serve

    host, port = args.host or settings.web.host, args.port or settings.web.port
    logger.info("dashboard on http://%s:%s", host, port)
    serve(settings, host, port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tripstream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the whole pipeline (embedded services)").set_defaults(func=_up)
    down = sub.add_parser("down", help="stop everything `up` started")
    down.add_argument(
        "--purge",
        action="store_true",
        help="also delete the local state: embedded database, broker log, checkpoints",
    )
    down.set_defaults(func=_down)

    status = sub.add_parser("status", help="services and per-file ingestion status")
    status.add_argument(
        "--follow",
        action="store_true",
        help="stream updates as they happen (LISTEN/NOTIFY, no polling)",
    )
    status.add_argument("--format", choices=["table", "json"], default="table")
    status.add_argument("--limit", type=int, default=20, help="files to show")
    status.set_defaults(func=_status)

    from tripstream.query import add_query_parser

    add_query_parser(sub).set_defaults(func=_query)

    gen = sub.add_parser("generate", help="write realistic synthetic trip files")
    gen.add_argument("out_dir")
    gen.add_argument("--rows", type=int, required=True)
    gen.add_argument("--files", type=int, default=1)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument(
        "--bad-share", type=float, default=0.0, help="share of malformed rows, e.g. 0.001"
    )
    gen.set_defaults(func=_generate)

    web = sub.add_parser("web", help="the live dashboard in the browser (default :8110)")
    web.add_argument("--host", help="address to bind (default: web.host, 127.0.0.1)")
    web.add_argument("--port", type=int, help="port (default: web.port, 8110)")
    web.set_defaults(func=_web)
    bench = sub.add_parser("bench", help="COPY ceiling vs full pipeline on generated data")
    bench.add_argument("--rows", type=int, default=2_000_000)
    bench.add_argument("--files", type=int, default=20)
    bench.add_argument("--out", default="bench/results")
    bench.add_argument("--smoke", action="store_true", help="a tiny run that checks the report")
    bench.add_argument(
        "--no-floor", action="store_true", help="skip the Postgres floor (writer SQL alone)"
    )
    bench.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("kafka", "py4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(load_settings(), args))
    except TripstreamError as e:
        print(f"tripstream: {e}", file=sys.stderr)
        return 2
    except psycopg2.OperationalError as e:
        print(
            f"tripstream: cannot connect to PostgreSQL ({str(e).strip().splitlines()[0]}). "
            "Try `make run` to start the local stack, or set TRIPSTREAM_DATABASE_URL.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
