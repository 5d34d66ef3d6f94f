"""Windowed frequency counts of a batch, computed with pyarrow on the collected rows.

Keys match the SQL recount in sql/checks/recount.sql exactly (same double arithmetic):
- region_hour:       region, hour window start (epoch seconds, UTC)
- datasource_day:    datasource, day (days since 1970-01-01)
- similar:           floor(lon*100), floor(lat*100) of origin and destination and the hour
                     of day, packed into one int64 as sql/schema/003_counts.sql's similar_key
- area_week_cells:   the origin's 0.01-degree cell (cx, cy) = floor(fine cell / 10), made of
                     exactly 10 x 10 fine cells (floor(origin lon*1000), floor(origin lat*1000);
                     not floor(lon*100): that can round the other way), and the ISO week start
                     (epoch day) -> trips, and the trips of each fine cell (slot 10 * (fx - 10 *
                     cx) + (fy - 10 * cy)) as up to SPARSE_SLOTS pairs or a 100-slot `fine`
- region_datasource: region, datasource -> trips, latest trip (epoch seconds)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

COARSE_CELLS_PER_DEGREE = 100  # 0.01 degree, about 1.1 km north-south
FINE_CELLS_PER_DEGREE = 1000  # 0.001 degree, about 110 m north-south


def _floor_div(values: pa.Array, by: float) -> pa.Array:
    return pc.cast(pc.floor(pc.divide(pc.cast(values, pa.float64()), by)), pa.int64())


def cell(coord: pa.Array, per_degree: int) -> pa.Array:
    return pc.cast(pc.floor(pc.multiply(coord, float(per_degree))), pa.int32())


def _packed_cell(cx: pa.Array, cy: pa.Array) -> pa.Array:
    """(cx + 18000) * 18001 + (cy + 9000): one of 36001 * 18001 cells, in (cx, cy) order."""
    return pc.add(pc.multiply(pc.add(pc.cast(cx, pa.int64()), 18000), 18001), pc.add(cy, 9000))


SIMILAR_CELLS = 36001 * 18001
SIMILAR_SHIFT = 200_000_000_000_000_000  # keeps (origin * cells + destination) * 24 in int64


def similar_key(
    ocx: pa.Array, ocy: pa.Array, dcx: pa.Array, dcy: pa.Array, hour: pa.Array
) -> pa.Array:
    """sql/schema/003_counts.sql's similar_key: the five numbers in one int64 that sorts as
    they do. The producer keeps coordinates on the globe (producer/validate.py), so every
    cell is in range and the key is unique to its five numbers."""
    pairs = pc.add(pc.multiply(_packed_cell(ocx, ocy), SIMILAR_CELLS), _packed_cell(dcx, dcy))
    shifted = pc.multiply(pc.subtract(pairs, SIMILAR_SHIFT), 24)
    return pc.add(shifted, pc.cast(hour, pa.int64()))


FINE_PER_CELL = 10  # fine cells a side of a 0.01-degree cell
SLOTS = FINE_PER_CELL * FINE_PER_CELL
WEEKS, WEEK_OFFSET = 1 << 21, 1 << 20  # week numbers from -2**20 (years before 1 AD) on
# A batch adds trips to a few of a cell's 100 fine cells (5 on average in 100k trips): a row
# that adds to at most this many goes as (slot, trips) pairs, s1..s8 and n1..n8, which the
# writer's SQL adds one by one (sql/writer/upsert_counts.sql names all eight); a row that
# adds to more goes as its whole `fine` array, added with fine_add.
SPARSE_SLOTS = 8
SUBSCRIPT_COLUMNS = tuple(f"s{i}" for i in range(1, SPARSE_SLOTS + 1))
ADDED_COLUMNS = tuple(f"n{i}" for i in range(1, SPARSE_SLOTS + 1))


def area_week_cells(fcx: pa.Array, fcy: pa.Array, week_start: pa.Array) -> pa.Table:
    """Trips per 0.01-degree cell and week, and the trips of its fine cells, in (cx, cy,
    week_start) order (sql/schema/003_counts.sql's area_week_cells). A row gives its fine
    trips either as pairs (s_i = slot + 1, the SQL subscript, and n_i = trips; a row with
    fewer pairs repeats its first, which the SQL assigns twice to the same value) or as
    `fine`, never both."""
    fx, fy = np.asarray(fcx, np.int64), np.asarray(fcy, np.int64)
    cx, cy = fx // FINE_PER_CELL, fy // FINE_PER_CELL  # floor, below zero too
    slot = (fx - cx * FINE_PER_CELL) * FINE_PER_CELL + (fy - cy * FINE_PER_CELL)
    week = np.asarray(week_start, np.int64)
    # (cx, cy, week) in one int64 that sorts as they do: the cell packed as in similar_key,
    # then the week number k (an ISO week starts on epoch day 7k - 3), offset to stay positive.
    packed = np.asarray(_packed_cell(pa.array(cx), pa.array(cy)), np.int64)
    key = packed * WEEKS + (week + 3) // 7 + WEEK_OFFSET
    keys, first, group = np.unique(key, return_index=True, return_inverse=True)
    # The (row, slot) pairs with trips, in row then slot order.
    pairs, pair_trips = np.unique(group * SLOTS + slot, return_counts=True)
    pair_row, pair_slot = pairs // SLOTS, pairs % SLOTS
    used = np.bincount(pair_row, minlength=keys.size)  # fine cells each row adds to
    sparse = used <= SPARSE_SLOTS
    rank = np.arange(pairs.size) - (np.cumsum(used) - used)[pair_row]  # pair's place in its row
    subscripts = np.zeros((keys.size, SPARSE_SLOTS), np.int16)
    added = np.zeros((keys.size, SPARSE_SLOTS), np.int32)
    mine = sparse[pair_row]
    subscripts[pair_row[mine], rank[mine]] = pair_slot[mine] + 1
    added[pair_row[mine], rank[mine]] = pair_trips[mine]
    padding = np.arange(SPARSE_SLOTS) >= used[:, None]
    subscripts = np.where(padding, subscripts[:, :1], subscripts)
    added = np.where(padding, added[:, :1], added)
    fine = np.zeros(keys.size * SLOTS, np.int32)
    fine[pairs[~mine]] = pair_trips[~mine]
    columns: dict[str, pa.Array] = {
        "cx": pa.array(cx[first].astype(np.int32)),
        "cy": pa.array(cy[first].astype(np.int32)),
        "week_start": pa.array(week[first].astype(np.int32)),
        "trips": pa.array(np.bincount(group, minlength=keys.size).astype(np.int64)),
    }
    for i, name in enumerate(SUBSCRIPT_COLUMNS):
        columns[name] = pa.array(subscripts[:, i], mask=~sparse)
    for i, name in enumerate(ADDED_COLUMNS):
        columns[name] = pa.array(added[:, i], mask=~sparse)
    columns["fine"] = pa.FixedSizeListArray.from_arrays(
        pa.array(fine), SLOTS, mask=pa.array(sparse)
    )
    return pa.table(columns)


def aggregates(rows: pa.Table) -> dict[str, pa.Table]:
    ts = rows.column("ts")
    hour_index = _floor_div(ts, 3600.0)
    day = _floor_div(ts, 86400.0)
    week_start = pc.subtract(pc.multiply(_floor_div(pc.add(day, 3), 7.0), 7), 3)
    t = pa.table(
        {
            "region": rows.column("region"),
            "datasource": rows.column("datasource"),
            "hour_start": pc.multiply(hour_index, 3600),
            "day": pc.cast(day, pa.int32()),
            "similar_key": similar_key(
                cell(rows.column("origin_lon"), COARSE_CELLS_PER_DEGREE),
                cell(rows.column("origin_lat"), COARSE_CELLS_PER_DEGREE),
                cell(rows.column("dest_lon"), COARSE_CELLS_PER_DEGREE),
                cell(rows.column("dest_lat"), COARSE_CELLS_PER_DEGREE),
                pc.subtract(hour_index, pc.multiply(day, 24)),
            ),
            "ts": ts,
        }
    )

    def count(keys: list[str]) -> pa.Table:
        out = t.group_by(keys, use_threads=False).aggregate([("ts", "count")])
        return out.rename_columns([*keys, "trips"])

    latest = t.group_by(["region", "datasource"], use_threads=False).aggregate(
        [("ts", "count"), ("ts", "max")]
    )
    return {
        "region_hour": count(["region", "hour_start"]),
        "datasource_day": count(["datasource", "day"]),
        "similar": count(["similar_key"]),
        "area_week_cells": area_week_cells(
            cell(rows.column("origin_lon"), FINE_CELLS_PER_DEGREE),
            cell(rows.column("origin_lat"), FINE_CELLS_PER_DEGREE),
            pc.cast(week_start, pa.int32()),
        ),
        "region_datasource": latest.rename_columns(["region", "datasource", "trips", "latest"]),
    }
