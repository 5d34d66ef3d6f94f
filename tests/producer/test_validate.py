"""Row validation rules (pure logic)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.validate import parse_datetime, parse_point, parse_row
from tripstream.errors import RowError

GOOD = [
    "Prague",
    "POINT (14.4973794438195 50.00136875782316)",
    "POINT (14.43109483523328 50.04052930943246)",
    "2018-05-28 09:03:40",
    "funny_car",
]


def test_parses_a_seed_row() -> None:
    row = parse_row(GOOD, file="f.csv", line=2)
    assert (row.origin_lon, row.origin_lat) == (14.4973794438195, 50.00136875782316)
    assert row.date_time == "2018-05-28 09:03:40"
    assert row.ts == 1527498220
    assert row.origin_coord == GOOD[1]  # kept verbatim for audit


@pytest.mark.parametrize(
    "text", ["POINT(1 2)", "point (1 2)", "  POINT ( -1.5   +2e1 ) ", "POINT (180 -90)"]
)
def test_point_spellings_accepted(text: str) -> None:
    lon, lat = parse_point(text, file="f", line=3, column="origin_coord")
    assert -180 <= lon <= 180 and -90 <= lat <= 90


@pytest.mark.parametrize(
    "text,reason",
    [
        ("POINT (181 0)", "out of range"),
        ("POINT (0 91)", "out of range"),
        ("POINT (NaN 1)", "not a WKT point"),
        ("POINT (1)", "not a WKT point"),
        ("LINESTRING (1 2, 3 4)", "not a WKT point"),
        ("", "not a WKT point"),
        ("POINT (inf 1)", "not a WKT point"),
    ],
)
def test_bad_points_name_file_line_and_fix(text: str, reason: str) -> None:
    with pytest.raises(RowError) as err:
        parse_point(text, file="in.csv", line=7, column="origin_coord")
    message = str(err.value)
    assert reason in message and "in.csv, line 7" in message and "Try" in message


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2018-05-28 09:03:40", "2018-05-28 09:03:40"),
        ("2018-05-28T09:03:40", "2018-05-28 09:03:40"),
        ("2018-05-28 09:03", "2018-05-28 09:03:00"),
        ("2018-05-28 09:03:40.987", "2018-05-28 09:03:40"),
        ("2018-05-28T11:03:40+02:00", "2018-05-28 09:03:40"),
        ("2018-05-28T09:03:40Z", "2018-05-28 09:03:40"),
    ],
)
def test_datetime_formats_normalised_to_utc(text: str, expected: str) -> None:
    assert parse_datetime(text, file="f", line=2)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        "2018-02-30 10:00:00",
        "2018-05-28",
        "yesterday",
        "1850-01-01 00:00:00",
        "2018-13-01 00:00:00",
    ],
)
def test_bad_datetimes_rejected(text: str) -> None:
    with pytest.raises(RowError):
        parse_datetime(text, file="f", line=2)


@pytest.mark.parametrize(
    "fields,reason",
    [
        (GOOD[:4], "expected 5 columns, found 4"),
        ([*GOOD, "x"], "expected 5 columns, found 6"),
        (["", *GOOD[1:]], "region is empty"),
        (["R" * 101, *GOOD[1:]], "max 100"),
        (["Pra\x00gue", *GOOD[1:]], "control characters"),
        ([*GOOD[:4], "  "], "datasource is empty"),
    ],
)
def test_bad_rows_give_reasons(fields: list[str], reason: str) -> None:
    with pytest.raises(RowError, match=reason):
        parse_row(fields, file="f.csv", line=9)


def test_sql_looking_region_is_plain_data() -> None:
    region = "Robert'); DROP TABLE trip_data;--"
    assert parse_row([region, *GOOD[1:]], file="f", line=2).region == region


@given(st.floats(-180, 180), st.floats(-90, 90))
def test_point_round_trips_any_valid_coordinate(lon: float, lat: float) -> None:
    assert parse_point(f"POINT ({lon!r} {lat!r})", file="f", line=1, column="c") == (lon, lat)


@given(
    st.datetimes(
        min_value=__import__("datetime").datetime(1900, 1, 2),
        max_value=__import__("datetime").datetime(2100, 12, 30),
    )
)
def test_datetime_round_trips(moment: object) -> None:
    text = moment.strftime("%Y-%m-%d %H:%M:%S")  # type: ignore[attr-defined]
    normalised, ts = parse_datetime(text, file="f", line=1)
    assert normalised == text
    assert math.isclose(ts % 60, moment.second)  # type: ignore[attr-defined]
