"""`tripstream query ...`: the live answers, read with the read-only role.

User input only ever reaches SQL as bound parameters.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from tripstream.db import connect, load_query
from tripstream.errors import BadInputError
from tripstream.output import render
from tripstream.settings import Settings

SIMILAR_RULE = (
    "Grouping rule: same 0.01-degree origin cell, same 0.01-degree destination "
    "cell, same hour of day (UTC). Coordinates are the cells' south-west corners."
)


def bbox(text: str) -> tuple[float, float, float, float]:
    try:
        min_lon, min_lat, max_lon, max_lat = (float(v) for v in text.split(","))
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"--bbox {text!r} is not MIN_LON,MIN_LAT,MAX_LON,MAX_LAT; try --bbox "
            "14.3,49.9,14.6,50.2"
        ) from e
    if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise argparse.ArgumentTypeError(
            f"--bbox {text!r}: need -180 <= MIN_LON <= MAX_LON <= 180 and "
            "-90 <= MIN_LAT <= MAX_LAT <= 90"
        )
    return min_lon, min_lat, max_lon, max_lat


def add_query_parser(sub: Any) -> argparse.ArgumentParser:
    query = sub.add_parser("query", help="live answers from Postgres")
    query.add_argument("--format", choices=["table", "json", "csv"], default="table")
    qs = query.add_subparsers(dest="question", required=True)
    weekly = qs.add_parser("weekly-average", help="weekly average trips for a region or bbox")
    area = weekly.add_mutually_exclusive_group(required=True)
    area.add_argument("--region")
    area.add_argument("--bbox", type=bbox, metavar="MIN_LON,MIN_LAT,MAX_LON,MAX_LAT")
    weekly.add_argument(
        "--from",
        dest="date_from",
        type=dt.date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="first day (its whole ISO week counts)",
    )
    weekly.add_argument(
        "--to",
        dest="date_to",
        type=dt.date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="last day (its whole ISO week counts)",
    )
    similar = qs.add_parser(
        "similar", help="trips grouped by similar origin, destination, time of day"
    )
    similar.add_argument("--limit", type=int, default=20)
    qs.add_parser("latest-datasource", help="latest datasource among the two most common regions")
    regions = qs.add_parser("regions", help="regions where a datasource appeared")
    regions.add_argument("--datasource", required=True)
    for p in (weekly, similar, regions, qs.choices["latest-datasource"]):
        p.add_argument("--format", choices=["table", "json", "csv"], default=argparse.SUPPRESS)
    return query


def answer(
    url: str, question: str, args: argparse.Namespace
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one question; returns column names and rows."""
    conn = connect(url, application="tripstream-query")
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cur:
            params: dict[str, Any]
            if question == "weekly-average":
                cur.execute(load_query("period"), {"from": args.date_from, "to": args.date_to})
                first_week, last_week = cur.fetchone() or (None, None)
                if first_week is None or last_week is None:
                    return ["weekly_average"], []
                if last_week < first_week:
                    raise BadInputError("--from is after --to. Try swapping them.")
                params = {"first_week": first_week, "last_week": last_week}
                if args.region is not None:
                    name, params["region"] = "weekly_average_region", args.region
                else:
                    name = "weekly_average_bbox"
                    params.update(
                        zip(("min_lon", "min_lat", "max_lon", "max_lat"), args.bbox, strict=True)
                    )
            elif question == "similar":
                name, params = "similar", {"limit": args.limit}
            elif question == "latest-datasource":
                name, params = "latest_datasource", {}
            else:
                name, params = "regions", {"datasource": args.datasource}
            cur.execute(load_query(name), params)
            columns = [d[0] for d in cur.description or []]
            return columns, list(cur.fetchall())
    finally:
        conn.close()


def run_query(settings: Settings, args: argparse.Namespace) -> int:
    columns, rows = answer(settings.database.reader, args.question, args)
    if args.question == "similar" and args.format == "table":
        print(SIMILAR_RULE)
    print(render(columns, rows, args.format))
    return 0
