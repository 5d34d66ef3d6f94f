"""Aggregation keys of the live counts (pure logic)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pyarrow as pa

from streaming.counts import (
    ADDED_COLUMNS,
    SIMILAR_CELLS,
    SIMILAR_SHIFT,
    SPARSE_SLOTS,
    SUBSCRIPT_COLUMNS,
    aggregates,
    area_week_cells,
)
from streaming.task import in_cell_order


def key(group: tuple[int, int, int, int, int]) -> int:
    """The packing of sql/schema/003_counts.sql, in Python integers."""
    ocx, ocy, dcx, dcy, hour = group
    origin, dest = (ocx + 18000) * 18001 + ocy + 9000, (dcx + 18000) * 18001 + dcy + 9000
    return (origin * SIMILAR_CELLS + dest - SIMILAR_SHIFT) * 24 + hour


def fine_of(row: dict[str, Any]) -> dict[int, int]:
    """A row of area_week_cells' batch counts as {slot: trips}, from its pairs (1-based
    subscripts, the first repeated as padding) or from its whole `fine` array."""
    if row["fine"] is not None:
        return {s: n for s, n in enumerate(row["fine"]) if n}
    pairs = {(row[s], row[n]) for s, n in zip(SUBSCRIPT_COLUMNS, ADDED_COLUMNS, strict=True)}
    return {s - 1: n for s, n in pairs}


def table(rows: list[tuple[str, str, float, float, float, float, str]]) -> pa.Table:
    ts = [int(dt.datetime.fromisoformat(r[6]).replace(tzinfo=dt.UTC).timestamp()) for r in rows]
    return pa.table(
        {
            "region": [r[0] for r in rows],
            "datasource": [r[1] for r in rows],
            "origin_lon": [r[2] for r in rows],
            "origin_lat": [r[3] for r in rows],
            "dest_lon": [r[4] for r in rows],
            "dest_lat": [r[5] for r in rows],
            "ts": ts,
        }
    )


def test_keys_windows_and_cells() -> None:
    counts = aggregates(
        table(
            [
                ("A", "s1", 14.4999, 50.0001, 7.0, 45.0, "2018-05-28 09:03:40"),  # a Monday
                ("A", "s1", 14.4951, 50.0099, 7.001, 45.009, "2018-05-28 09:59:59"),
                ("A", "s2", -0.0001, -0.0001, 0.0, 0.0, "2018-06-03 23:00:00"),  # the Sunday after
            ]
        )
    )
    hours = sorted(counts["region_hour"].to_pylist(), key=lambda r: r["hour_start"])
    assert [h["trips"] for h in hours] == [2, 1]
    assert dt.datetime.fromtimestamp(hours[0]["hour_start"], dt.UTC).hour == 9
    similar = {r["similar_key"]: r["trips"] for r in counts["similar"].to_pylist()}
    assert similar == {key((1449, 5000, 700, 4500, 9)): 2, key((-1, -1, 0, 0, 23)): 1}
    cells = counts["area_week_cells"].to_pylist()
    assert {r["week_start"] for r in cells} == {(dt.date(2018, 5, 28) - dt.date(1970, 1, 1)).days}
    fine = {(r["cx"], r["cy"]): (r["trips"], fine_of(r)) for r in cells}
    # fine cell (fx, fy) lies in cell (fx // 10, fy // 10), floored below zero, at slot
    # 10 * (fx % 10) + fy % 10: (14499, 50000) -> 90, (14495, 50009) -> 59, (-1, -1) -> 99
    assert fine == {(1449, 5000): (2, {90: 1, 59: 1}), (-1, -1): (1, {99: 1})}
    latest = {
        (r["region"], r["datasource"]): (r["trips"], r["latest"])
        for r in counts["region_datasource"].to_pylist()
    }
    assert latest[("A", "s1")][0] == 2


def test_rows_go_to_copy_in_the_cell_index_order() -> None:
    """streaming.task.in_cell_order sorts by (floor(lon*1000), floor(lat*1000)), the key of
    trip_data's cell index, across the signs and the extremes of both."""
    lons = [180.0, -180.0, 0.0005, -0.0005, 14.4, 14.4, 14.4, -73.99]
    lats = [-90.0, 90.0, 0.0, 0.0, 89.9999, -89.9999, 0.0005, 40.7]
    rows = pa.table({"origin_lon": lons, "origin_lat": lats, "n": list(range(len(lons)))})
    ordered = in_cell_order(rows)
    cells = [
        (math.floor(lon * 1000), math.floor(lat * 1000))
        for lon, lat in zip(
            ordered.column("origin_lon").to_pylist(),
            ordered.column("origin_lat").to_pylist(),
            strict=True,
        )
    ]
    assert cells == sorted(cells)
    assert sorted(ordered.column("n").to_pylist()) == list(range(len(lons)))


def test_area_cells_unpack_their_keys_in_key_order_at_the_extremes() -> None:
    """Cells and weeks come out as they went in, across zero, the globe's edges and weeks
    before 1970, sorted as (cx, cy, week_start) by the packed key; every fine cell lands in
    its own slot and the trips add up."""
    monday = -3  # 1969-12-29
    fcx = [-180000, 179999, 0, -1, 5, 5, 5, 14499]
    fcy = [-90000, 89999, 0, -1, 7, 7, 7, 50000]
    week = [monday, 7 * 2660 - 3, monday, monday, 4, 4, -7 * 2610 - 3, 4]
    cells = area_week_cells(pa.array(fcx, pa.int32()), pa.array(fcy, pa.int32()), pa.array(week))
    got = [
        (
            r["cx"],
            r["cy"],
            r["week_start"],
            r["trips"],
            fine_of(r),
        )
        for r in cells.to_pylist()
    ]
    assert got == sorted(got)
    assert got == [
        (-18000, -9000, monday, 1, {0: 1}),
        (-1, -1, monday, 1, {99: 1}),
        (0, 0, -7 * 2610 - 3, 1, {57: 1}),
        (0, 0, monday, 1, {0: 1}),
        (0, 0, 4, 2, {57: 2}),
        (1449, 5000, 4, 1, {90: 1}),
        (17999, 8999, 7 * 2660 - 3, 1, {99: 1}),
    ]


def test_a_row_adds_to_up_to_eight_fine_cells_as_pairs_and_to_more_as_a_whole_array() -> None:
    """One cell and week with trips in 1, 8 and 9 of its fine cells: pairs in slot order,
    padded with the first; beyond eight, the whole array and no pairs."""
    for used in (1, SPARSE_SLOTS, SPARSE_SLOTS + 1):
        fcx = [10 + s // 10 for s in range(used)] + [10]  # slot 0 twice
        fcy = [20 + s % 10 for s in range(used)] + [20]
        (row,) = area_week_cells(
            pa.array(fcx, pa.int32()), pa.array(fcy, pa.int32()), pa.array([4] * len(fcx))
        ).to_pylist()
        assert row["trips"] == used + 1
        assert fine_of(row) == {0: 2, **{s: 1 for s in range(1, used)}}
        pairs = [row[s] for s in SUBSCRIPT_COLUMNS]
        if used <= SPARSE_SLOTS:
            assert row["fine"] is None
            assert pairs == [*range(1, used + 1), *[1] * (SPARSE_SLOTS - used)]
        else:
            assert pairs == [None] * SPARSE_SLOTS
            assert len(row["fine"]) == 100
