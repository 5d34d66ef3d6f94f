"""`tripstream query`: hand-computed answers on the sample and on a generated set."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
import pyarrow as pa
import pytest

from streaming.counts import similar_key
from tests.conftest import load_through_writer
from tripstream.cli import build_parser, main
from tripstream.db import load_query
from tripstream.generate import generate_files
from tripstream.query import answer
from tripstream.settings import Settings

pytestmark = pytest.mark.integration


def ask(settings: Settings, *argv: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    args = build_parser().parse_args(["query", *argv])
    return answer(settings.database.reader, args.question, args)


@pytest.fixture
def sample_loaded(settings: Settings, db: Any, sample_csv: Path) -> Settings:
    load_through_writer(settings.database.url, [sample_csv])
    return settings


def test_latest_datasource_on_the_sample(sample_loaded: Settings) -> None:
    columns, rows = ask(sample_loaded, "latest-datasource")
    assert rows[0][columns.index("datasource")] == "pt_search_app"
    assert rows[0][columns.index("top_regions")] == "Turin (38), Prague (34)"


def test_regions_of_cheap_mobile_on_the_sample(sample_loaded: Settings) -> None:
    _, rows = ask(sample_loaded, "regions", "--datasource", "cheap_mobile")
    assert [(r[0], r[1]) for r in rows] == [("Hamburg", 10), ("Prague", 13), ("Turin", 10)]


def test_weekly_average_for_a_region_on_the_sample(sample_loaded: Settings) -> None:
    # sample spans 2018-05-01 .. 2018-05-31: ISO weeks starting 04-30 .. 05-28 = 5 weeks
    columns, rows = ask(sample_loaded, "weekly-average", "--region", "Prague")
    got = dict(zip(columns, rows[0], strict=True))
    assert (got["weeks"], got["trips"]) == (5, 34)
    assert float(got["weekly_average"]) == pytest.approx(6.8)
    _, rows = ask(
        sample_loaded,
        "weekly-average",
        "--region",
        "Prague",
        "--from",
        "2018-05-07",
        "--to",
        "2018-05-13",
    )
    assert rows[0][3] == 1  # one week


def rows_in_box(db: Any, box: tuple[float, ...]) -> int:
    """The trips whose origin lies in (min_lon, min_lat, max_lon, max_lat), edges included,
    counted row by row."""
    min_lon, min_lat, max_lon, max_lat = box
    db.execute(
        "SELECT count(*) FROM trip_data WHERE origin_lon BETWEEN %s AND %s AND "
        "origin_lat BETWEEN %s AND %s",
        (min_lon, max_lon, min_lat, max_lat),
    )
    return int(db.fetchone()[0])


def test_bbox_cutting_through_cells_is_exact(sample_loaded: Settings, db: Any) -> None:
    # edges at 3+ decimals cut through the 0.001-degree cells
    for box in (
        "14.4003,50.0107,14.4911,50.0795",
        "7.5,44.9,7.7,45.1",
        "0,0,1,1",
        "14.43109483523328,50.04052930943246,14.5,50.1",
    ):
        expected = rows_in_box(db, tuple(float(v) for v in box.split(",")))
        columns, rows = ask(sample_loaded, "weekly-average", "--bbox", box)
        assert rows[0][columns.index("trips")] == expected, box


def test_bbox_from_coarse_fine_and_boundary_cells_is_exact(
    settings: Settings, db: Any, tmp_path: Path
) -> None:
    """Boxes on whole 0.01-degree cells, inside one, across zero and at random, on 3,000
    origins around (0, 0) over three weeks: every answer equals a count of the rows."""
    rng = random.Random(11)  # noqa: S311 (test data)
    path = tmp_path / "around_zero.csv"
    with path.open("w") as f:
        f.write("region,origin_coord,destination_coord,datetime,datasource\n")
        for i in range(3000):
            lon, lat = round(rng.uniform(-0.05, 0.05), 4), round(rng.uniform(-0.03, 0.03), 4)
            day = dt.date(2018, 5, 28) + dt.timedelta(days=i % 21)
            f.write(f"Z,POINT ({lon} {lat}),POINT (1 1),{day} 08:00:00,s\n")
    load_through_writer(settings.database.url, [path])
    boxes = [
        (-0.03, -0.02, 0.03, 0.02),  # on coarse edges: all coarse cells, no fine, boundary
        (-0.0299, -0.0199, 0.0301, 0.0201),  # the same shifted: fine strips on every side
        (0.001, 0.001, 0.009, 0.009),  # inside one coarse cell: no coarse block
        (-0.05, -0.03, 0.05, 0.03),  # everything
        (0.0123, -0.0311, 0.0124, 0.05),  # thinner than a fine cell
    ]
    for _ in range(20):
        x0, x1 = sorted(round(rng.uniform(-0.06, 0.06), 4) for _ in range(2))
        y0, y1 = sorted(round(rng.uniform(-0.04, 0.04), 4) for _ in range(2))
        boxes.append((x0, y0, x1, y1))

    def trips(box: tuple[float, float, float, float]) -> int:
        columns, rows = ask(settings, "weekly-average", "--bbox=" + ",".join(map(str, box)))
        return int(rows[0][columns.index("trips")])  # "--bbox=": "-0.03" is not a flag

    expected = [rows_in_box(db, box) for box in boxes]
    assert [trips(box) for box in boxes] == expected
    # The box on coarse edges reads no fine count: with them all zero its answer holds.
    db.execute("UPDATE area_week_cells SET fine = array_fill(0, ARRAY[100])")
    assert trips(boxes[0]) == expected[0] and trips(boxes[1]) < expected[1]


def test_similar_groups_largest_first(sample_loaded: Settings) -> None:
    columns, rows = ask(sample_loaded, "similar", "--limit", "200")
    trips = [r[columns.index("trips")] for r in rows]
    assert sum(trips) == 100 and trips == sorted(trips, reverse=True)


def test_similar_reads_its_top_index_and_falls_back_exactly(settings: Settings, db: Any) -> None:
    # 30 groups of 1..30 trips (21 reach the floor of 10 and carry top_trips), and 20,000
    # single trips, enough for the planner to prefer the index.
    for n in range(1, 31):
        db.execute(
            "INSERT INTO similar_trip_counts VALUES (similar_key(%s, 1, 2, 3, 4), %s, %s)",
            (n, n, n if n >= 10 else None),
        )
    db.execute(
        "INSERT INTO similar_trip_counts SELECT similar_key(100 + i, 1, 2, 3, 4), 1, NULL"
        " FROM generate_series(1, 20000) i"
    )
    db.execute("ANALYZE similar_trip_counts")
    for limit, smallest in ((5, 26), (21, 10), (25, 6)):  # 25 > 21: all groups are sorted
        columns, rows = ask(settings, "similar", "--limit", str(limit))
        assert [r[columns.index("trips")] for r in rows] == list(range(30, smallest - 1, -1))
        assert {r[columns.index("origin_lat")] for r in rows} == {Decimal("0.01")}
    db.execute("EXPLAIN " + load_query("similar"), {"limit": 5})
    assert "similar_trip_counts_top" in "\n".join(r[0] for r in db.fetchall())
    with pytest.raises(psycopg2.errors.CheckViolation):
        db.execute("INSERT INTO similar_trip_counts VALUES (0, 12, NULL)")


# The corners of the key's range, cells either side of zero, the first and the last hour.
GROUPS = [
    (-18000, -9000, -18000, -9000, 0),
    (18000, 9000, 18000, 9000, 23),
    (-18000, 9000, 18000, -9000, 12),
    (-1, -1, 0, 0, 23),
    (0, 0, -1, -1, 0),
    (1449, 5000, 700, 4500, 9),
]


def test_similar_key_packs_in_order_and_unpacks_exactly(db: Any) -> None:
    keys = similar_key(*(pa.array(column, pa.int32()) for column in zip(*GROUPS, strict=True)))
    for group, key in zip(GROUPS, keys.to_pylist(), strict=True):
        db.execute("SELECT similar_key(%s, %s, %s, %s, %s)", group)
        assert db.fetchone()[0] == key  # the batch's packing and the recount's agree
        db.execute("INSERT INTO similar_trip_counts VALUES (%s, 1, NULL)", (key,))
    db.execute(
        "SELECT origin_cx, origin_cy, dest_cx, dest_cy, hour_of_day FROM similar_trips"
        " ORDER BY similar_key"
    )
    assert db.fetchall() == sorted(GROUPS)  # unpacked exactly, and in the five numbers' order


def test_generated_set_with_known_counts(settings: Settings, db: Any, tmp_path: Path) -> None:
    paths = generate_files(tmp_path / "gen", rows=20_000, files=2, seed=7)
    load_through_writer(settings.database.url, paths)
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(paths[0]).to_pandas()
    import pandas as pd

    table = pd.concat([table, pacsv.read_csv(paths[1]).to_pandas()])
    when = pd.to_datetime(table["datetime"])
    weeks = (
        (when.min() - pd.to_timedelta(when.min().weekday(), "D")).normalize(),
        (when.max() - pd.to_timedelta(when.max().weekday(), "D")).normalize(),
    )
    n_weeks = (weeks[1] - weeks[0]).days // 7 + 1
    turin = int((table["region"] == "Turin").sum())
    columns, rows = ask(settings, "weekly-average", "--region", "Turin")
    got = dict(zip(columns, rows[0], strict=True))
    assert (got["trips"], got["weeks"]) == (turin, n_weeks)
    assert float(got["weekly_average"]) == pytest.approx(round(turin / n_weeks, 2))
    lon = table["origin_coord"].str.extract(r"\((\S+) (\S+)\)").astype(float)
    inside = (lon[0] >= 7.6) & (lon[0] <= 7.7123) & (lon[1] >= 45.01) & (lon[1] <= 45.0987)
    columns, rows = ask(settings, "weekly-average", "--bbox", "7.6,45.01,7.7123,45.0987")
    assert rows[0][columns.index("trips")] == int(inside.sum())
    regions = table[table["datasource"] == "funny_car"]["region"].value_counts().sort_index()
    _, rows = ask(settings, "regions", "--datasource", "funny_car")
    assert [(r[0], r[1]) for r in rows] == list(regions.items())
    latest = table[table["region"].isin(table["region"].value_counts().index[:2])]
    expected = latest.sort_values(["datetime", "datasource"], ascending=[False, True]).iloc[0]
    _, rows = ask(settings, "latest-datasource")
    assert rows[0][0] == expected["datasource"]


def test_query_output_formats(sample_loaded: Settings, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TRIPSTREAM_DATABASE_URL", sample_loaded.database.url)
    assert main(["query", "--format", "json", "regions", "--datasource", "cheap_mobile"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["region"] for d in data] == ["Hamburg", "Prague", "Turin"]
    assert main(["query", "latest-datasource", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("pt_search_app,Turin,")
    assert main(["query", "regions", "--datasource", "x'; DROP TABLE trip_data; --"]) == 0
    assert "(0 rows)" in capsys.readouterr().out
    assert main(["query", "similar", "--limit", "3"]) == 0
    assert "Grouping rule: same 0.01-degree origin cell" in capsys.readouterr().out


def test_unreachable_database_is_a_clear_error(capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("TRIPSTREAM_DATABASE_URL", "postgresql://tripstream@127.0.0.1:1/x")
    assert main(["query", "latest-datasource"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to PostgreSQL" in err and "make run" in err


def test_reader_role_cannot_write(sample_loaded: Settings) -> None:
    conn = psycopg2.connect(sample_loaded.database.reader)
    with pytest.raises(psycopg2.errors.InsufficientPrivilege), conn.cursor() as cur:
        cur.execute("DELETE FROM trip_data")
    conn.close()


def test_bad_bbox_is_a_clear_usage_error() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="MIN_LON,MIN_LAT"):
        from tripstream.query import bbox

        bbox("1,2,3")
    assert dt.date.fromisoformat("2018-05-01")
