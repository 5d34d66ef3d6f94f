"""`tripstream generate`: realistic synthetic trip files, fast and deterministic per seed.

Regions with real city bounding boxes; origins and destinations cluster around hotspots;
departures follow a daily rhythm (morning and evening peaks) and a weekly one (quieter
weekends); the five seed datasources with unequal shares; an optional share of malformed
rows (bad coordinates, impossible dates, missing columns) that the producer must quarantine.
Each file gets a manifest line in OUT_DIR/manifest.json with its valid and bad row counts.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

logger = logging.getLogger(__name__)

# name: (min_lon, min_lat, max_lon, max_lat, weight)
REGIONS = {
    "Prague": (14.22, 49.94, 14.71, 50.18, 0.30),
    "Turin": (7.58, 45.00, 7.77, 45.13, 0.25),
    "Hamburg": (9.73, 53.39, 10.33, 53.74, 0.20),
    "Milan": (9.04, 45.39, 9.28, 45.54, 0.15),
    "Lyon": (4.77, 45.70, 4.90, 45.81, 0.10),
}
DATASOURCES = {
    "cheap_mobile": 0.33,
    "pt_search_app": 0.20,
    "bad_diesel_vehicles": 0.18,
    "baba_car": 0.16,
    "funny_car": 0.13,
}
HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.4, 1, 3, 6, 8, 5, 3, 3, 4, 3, 3, 4, 6, 8, 7, 5, 4, 3, 2, 1.5]
)
WEEKDAY_WEIGHTS = np.array([1.0, 1.0, 1.0, 1.05, 1.15, 0.7, 0.55])  # Monday .. Sunday
START = np.datetime64("2018-04-02")  # a Monday
WEEKS = 8
HOTSPOTS = 12
HEADER = ["region", "origin_coord", "destination_coord", "datetime", "datasource"]


def _points(
    rng: np.random.Generator, region_idx: np.ndarray, centers: np.ndarray, boxes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    spot = rng.integers(0, HOTSPOTS, region_idx.size)
    c = centers[region_idx, spot]
    box = boxes[region_idx]
    spread = (box[:, 2] - box[:, 0]) * 0.06
    lon = np.clip(c[:, 0] + rng.normal(0, 1, region_idx.size) * spread, box[:, 0], box[:, 2])
    lat = np.clip(c[:, 1] + rng.normal(0, 1, region_idx.size) * spread * 0.7, box[:, 1], box[:, 3])
    return lon, lat


def _wkt(lon: np.ndarray, lat: np.ndarray) -> pa.Array:
    """WKT points with 6 decimals (about 11 cm), as GPS exports usually carry."""
    return pc.binary_join_element_wise(
        "POINT (",
        pc.cast(pa.array(np.round(lon, 6)), pa.string()),
        " ",
        pc.cast(pa.array(np.round(lat, 6)), pa.string()),
        ")",
        "",
    )


def make_table(rows: int, rng: np.random.Generator, bad_share: float) -> tuple[pa.Table, int]:
    names = list(REGIONS)
    boxes = np.array([REGIONS[n][:4] for n in names])
    weights = np.array([REGIONS[n][4] for n in names])
    centers = np.stack(
        [
            np.stack([rng.uniform(b[0], b[2], HOTSPOTS), rng.uniform(b[1], b[3], HOTSPOTS)], axis=1)
            for b in boxes
        ]
    )
    region_idx = rng.choice(len(names), rows, p=weights / weights.sum())
    olon, olat = _points(rng, region_idx, centers, boxes)
    dlon, dlat = _points(rng, region_idx, centers, boxes)
    day_weights = np.tile(WEEKDAY_WEIGHTS, WEEKS)
    day = rng.choice(day_weights.size, rows, p=day_weights / day_weights.sum())
    hour = rng.choice(24, rows, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    seconds = day * 86400 + hour * 3600 + rng.integers(0, 3600, rows)
    stamps = pa.array(START.astype("datetime64[s]") + seconds.astype("timedelta64[s]"))
    sources = list(DATASOURCES)
    p = np.array(list(DATASOURCES.values()))
    source_idx = rng.choice(len(sources), rows, p=p / p.sum())
    origin, destination = _wkt(olon, olat), _wkt(dlon, dlat)
    when = pc.strftime(stamps, format="%Y-%m-%d %H:%M:%S")
    bad = rng.random(rows) < bad_share if bad_share > 0 else np.zeros(rows, bool)
    n_bad = int(bad.sum())
    if n_bad:
        kind = rng.integers(0, 3, rows)
        mask = pa.array(bad & (kind == 0))
        origin = pc.if_else(mask, pa.scalar("POINT (200.5 95.1)"), origin)
        when = pc.if_else(pa.array(bad & (kind == 1)), pa.scalar("2018-02-30 10:00:00"), when)
        destination = pc.if_else(pa.array(bad & (kind == 2)), pa.scalar("POINT (nan)"), destination)
    table = pa.table(
        {
            "region": pa.array(np.array(names, dtype=object)[region_idx]),
            "origin_coord": origin,
            "destination_coord": destination,
            "datetime": when,
            "datasource": pa.array(np.array(sources, dtype=object)[source_idx]),
        }
    )
    return table, n_bad


def generate_files(
    out_dir: str | Path,
    *,
    rows: int,
    files: int = 1,
    seed: int = 42,
    bad_share: float = 0.0,
    prefix: str = "trips",
) -> list[Path]:
    """Write `files` CSV files holding `rows` rows in total; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    started = time.monotonic()
    paths, manifest = [], []
    per_file = [rows // files + (1 if i < rows % files else 0) for i in range(files)]
    for i, n in enumerate(per_file):
        path = out / f"{prefix}-{seed}-{i:04d}.csv"
        part = path.with_name(path.name + ".part")
        n_bad = 0
        with pa.OSFile(str(part), "wb") as sink:
            sink.write((",".join(HEADER) + "\n").encode())
            for start in range(0, n, 1_000_000):
                table, bad = make_table(min(1_000_000, n - start), rng, bad_share)
                n_bad += bad
                pacsv.write_csv(
                    table,
                    sink,
                    write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"),
                )
        part.rename(path)  # appear complete, like a well-behaved writer
        paths.append(path)
        manifest.append({"file": path.name, "rows": n, "valid": n - n_bad, "bad": n_bad})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    elapsed = time.monotonic() - started
    logger.info(
        "generated %s rows in %s files in %.1fs (%.0f rows/s)",
        rows,
        files,
        elapsed,
        rows / max(elapsed, 1e-9),
    )
    return paths
