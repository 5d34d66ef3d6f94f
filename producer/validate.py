"""Row validation: pure functions from CSV fields to a typed Row or a RowError.

Accepted input, per row (documented in README):
- region, datasource: non-empty after trimming, at most `max_len` characters, no control
  characters. Stored verbatim (SQL-looking text is data, never code).
- origin_coord, destination_coord: WKT `POINT (lon lat)` (case-insensitive keyword, any
  spacing), finite decimal numbers, -180 <= lon <= 180, -90 <= lat <= 90.
- datetime: ISO 8601 date and time, `YYYY-MM-DD HH:MM[:SS[.ffffff]]` with ' ' or 'T',
  optionally with `Z` or `+HH:MM`. Without an offset it is taken as UTC (the seed carries
  none); with one it is converted to UTC. Fractions of a second are dropped. Years 1900-2100.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from tripstream.errors import RowError
from tripstream.records import Row

HEADER = ("region", "origin_coord", "destination_coord", "datetime", "datasource")

# The rules as regex text, shared with the vectorised fast path (producer/chunks.py).
NUMBER_RE = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
POINT_RE = rf"^\s*POINT\s*\(\s*(?P<lon>{NUMBER_RE})\s+(?P<lat>{NUMBER_RE})\s*\)\s*$"
CONTROL_RE = r"[\x00-\x1f\x7f]"
_POINT = re.compile(POINT_RE, re.IGNORECASE)
_CONTROL = re.compile(CONTROL_RE)


def parse_point(text: str, *, file: str, line: int, column: str) -> tuple[float, float]:
    match = _POINT.match(text)
    if match is None:
        raise RowError(
            file,
            line,
            f"{column} {text[:60]!r} is not a WKT point",
            "the form POINT (lon lat), e.g. POINT (14.43 50.04)",
        )
    lon, lat = float(match.group("lon")), float(match.group("lat"))
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise RowError(
            file,
            line,
            f"{column} {text[:60]!r} is out of range",
            "longitude in [-180, 180] first, then latitude in [-90, 90]",
        )
    return lon, lat


def parse_datetime(text: str, *, file: str, line: int) -> tuple[str, int]:
    """Normalised 'YYYY-MM-DD HH:MM:SS' (UTC) and epoch seconds."""
    value = text.strip()
    if len(value) < 16 or value[10] not in " T":
        raise RowError(
            file,
            line,
            f"datetime {text[:40]!r} has no time of day",
            "the form YYYY-MM-DD HH:MM:SS, e.g. 2018-05-28 09:03:40",
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as e:
        raise RowError(
            file,
            line,
            f"datetime {text[:40]!r} is not a valid date and time ({e})",
            "a real calendar date in the form YYYY-MM-DD HH:MM:SS",
        ) from e
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if not 1900 <= moment.year <= 2100:
        raise RowError(
            file, line, f"datetime {text[:40]!r} is outside 1900-2100", "checking the year"
        )
    return moment.strftime("%Y-%m-%d %H:%M:%S"), int(moment.timestamp())


def check_label(text: str, *, file: str, line: int, column: str, max_len: int) -> str:
    if not text.strip():
        raise RowError(file, line, f"{column} is empty", f"giving every row a {column}")
    if len(text) > max_len:
        raise RowError(
            file,
            line,
            f"{column} is {len(text)} characters long (max {max_len})",
            f"a shorter {column}",
        )
    if _CONTROL.search(text):
        raise RowError(
            file,
            line,
            f"{column} contains control characters",
            f"removing NUL, tabs or line breaks from {column}",
        )
    return text


def parse_row(fields: list[str], *, file: str, line: int, max_len: int = 100) -> Row:
    if len(fields) != len(HEADER):
        raise RowError(
            file,
            line,
            f"expected {len(HEADER)} columns, found {len(fields)}",
            "one row per line as " + ",".join(HEADER) + " (quote fields with commas)",
        )
    region, origin, destination, when, source = fields
    olon, olat = parse_point(origin, file=file, line=line, column="origin_coord")
    dlon, dlat = parse_point(destination, file=file, line=line, column="destination_coord")
    date_time, ts = parse_datetime(when, file=file, line=line)
    return Row(
        line_no=line,
        region=check_label(region, file=file, line=line, column="region", max_len=max_len),
        origin_coord=origin,
        destination_coord=destination,
        date_time=date_time,
        datasource=check_label(source, file=file, line=line, column="datasource", max_len=max_len),
        origin_lon=olon,
        origin_lat=olat,
        dest_lon=dlon,
        dest_lat=dlat,
        ts=ts,
    )
