"""The schema's upgrade of a database made by an earlier tripstream, on a real Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from typing import Any

import psycopg2
import pytest

from tripstream.db import apply_schema, database_url
from tripstream.stack.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration

# similar_trip_counts as tripstream made it before the packed key: five key columns.
FIVE_COLUMNS = """
CREATE FUNCTION similar_top_trips(trips bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS 'SELECT CASE WHEN trips >= 10 THEN trips END';
CREATE TABLE similar_trip_counts (
    origin_cx integer NOT NULL, origin_cy integer NOT NULL,
    dest_cx integer NOT NULL, dest_cy integer NOT NULL, hour_of_day smallint NOT NULL,
    trips bigint NOT NULL,
    top_trips bigint CHECK (top_trips IS NOT DISTINCT FROM similar_top_trips(trips)),
    PRIMARY KEY (origin_cx, origin_cy, dest_cx, dest_cy, hour_of_day)
);
INSERT INTO similar_trip_counts VALUES
    (1449, 5000, 700, 4500, 9, 12, 12), (-18000, -9000, 18000, 9000, 23, 1, NULL),
    (-1, -1, 0, 0, 0, 3, NULL);
"""
# The area counts before area_week_cells: a row per fine cell, and a row per 0.01-degree
# cell in area_week_coarse_counts; fine cells either side of zero.
AREA_TABLES = """
CREATE TABLE area_week_counts (
    cx integer NOT NULL, cy integer NOT NULL, week_start date NOT NULL, trips bigint NOT NULL,
    PRIMARY KEY (cx, cy, week_start)
);
INSERT INTO area_week_counts VALUES
    (14499, 50000, '2018-05-28', 2), (14490, 50009, '2018-05-28', 3),
    (14500, 50000, '2018-05-28', 4), (14499, 50000, '2018-06-04', 5),
    (-1, -10, '2018-05-28', 6), (-10, -1, '2018-05-28', 7), (0, 0, '2018-05-28', 8);
CREATE TABLE area_week_coarse_counts (
    cx integer NOT NULL, cy integer NOT NULL, week_start date NOT NULL, trips bigint NOT NULL,
    PRIMARY KEY (cx, cy, week_start)
);
INSERT INTO area_week_coarse_counts VALUES (1449, 5000, '2018-05-28', 5);
"""


@pytest.fixture
def old_database(postgres: EmbeddedPostgres) -> Iterator[str]:
    admin = psycopg2.connect(postgres.url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS tripstream_old")
        cur.execute("CREATE DATABASE tripstream_old")
    url = database_url(postgres.url, "tripstream_old")
    with closing(psycopg2.connect(url)) as conn, conn, conn.cursor() as cur:
        cur.execute(FIVE_COLUMNS + AREA_TABLES)
    yield url
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE tripstream_old")
    admin.close()


def constraints(cur: Any) -> set[str]:
    cur.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'similar_trip_counts'::regclass"
    )
    return {r[0] for r in cur.fetchall()}


def test_five_key_columns_become_the_packed_key(old_database: str, db: Any) -> None:
    apply_schema(old_database)
    apply_schema(old_database)  # the upgrade happens once; applying again changes nothing
    with closing(psycopg2.connect(old_database)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT origin_cx, origin_cy, dest_cx, dest_cy, hour_of_day, trips, top_trips"
            " FROM similar_trips ORDER BY similar_key"
        )
        rows: list[Any] = cur.fetchall()
        cur.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'similar_trip_counts' ORDER BY ordinal_position"
        )
        columns = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'similar_trip_counts'")
        indexes = {r[0] for r in cur.fetchall()}
        converted = constraints(cur)
    assert rows == [
        (-18000, -9000, 18000, 9000, 23, 1, None),
        (-1, -1, 0, 0, 0, 3, None),
        (1449, 5000, 700, 4500, 9, 12, 12),
    ]
    assert columns == ["similar_key", "trips", "top_trips"]
    assert indexes == {"similar_trip_counts_pkey", "similar_trip_counts_top"}
    assert converted == constraints(db)  # named as in a database made with the packed key


def test_fine_area_counts_become_area_week_cells_once(old_database: str) -> None:
    apply_schema(old_database)
    apply_schema(old_database)  # the old tables are gone: applying again changes nothing
    with closing(psycopg2.connect(old_database)) as conn, conn.cursor() as cur:
        cur.execute("SELECT cx, cy, week_start::text, trips, fine FROM area_week_cells")
        cells = sorted(
            (cx, cy, week, trips, {s: n for s, n in enumerate(fine) if n})
            for cx, cy, week, trips, fine in cur.fetchall()
        )
        cur.execute(
            "SELECT to_regclass('area_week_counts'), to_regclass('area_week_coarse_counts')"
        )
        old_tables = cur.fetchone()
    # fine (fx, fy) is slot 10 * (fx - 10 * cx) + (fy - 10 * cy) of cell (fx // 10, fy // 10)
    assert cells == [
        (-1, -1, "2018-05-28", 13, {90: 6, 9: 7}),  # fine -1 and -10 are cell -1: floor
        (0, 0, "2018-05-28", 8, {0: 8}),
        (1449, 5000, "2018-05-28", 5, {90: 2, 9: 3}),
        (1449, 5000, "2018-06-04", 5, {90: 5}),
        (1450, 5000, "2018-05-28", 4, {0: 4}),
    ]
    assert old_tables == (None, None)
