-- Run by streaming/writer.py inside the batch transaction, after the batch's counts were
-- COPYed into the temp tables tmp_<name>. Adds them to the live count tables.
-- Streaming queries of different lanes commit concurrently and may touch the same keys:
-- every statement takes its keys in key order (area_week_cells: the whole table, by an
-- advisory lock), and the tables come in one fixed order, so two batches wait for each
-- other but never deadlock. The big, mostly private tables come first; the small ones
-- every batch touches come last, so their row locks are held only for the last moments of
-- the transaction.
INSERT INTO similar_trip_counts (similar_key, trips, top_trips)
SELECT similar_key, trips, similar_top_trips(trips) FROM tmp_similar ORDER BY 1
ON CONFLICT (similar_key)
DO UPDATE SET trips = similar_trip_counts.trips + EXCLUDED.trips,
              top_trips = similar_top_trips(similar_trip_counts.trips + EXCLUDED.trips);

-- area_week_cells: every batch adds to the same few thousand rows, so two writers waited for
-- each other's commit there anyway; they now take turns for the whole table, and the
-- statements below may take its rows in any order. New rows come in at zero, then every row
-- gets its batch's trips: a fine cell at a time (s_i, n_i: the SQL subscript and the trips;
-- a row with fewer than eight pairs repeats its first, which assigns the same value again),
-- or its whole `fine` array when the batch adds to more than eight of its fine cells
-- (streaming/counts.py). Adding 100 slots with fine_add and receiving the 100-slot array
-- took most of this table's time, for a batch that changes five slots a row on average.
SELECT pg_advisory_xact_lock(hashtext('tripstream.area_week_cells'));

INSERT INTO area_week_cells (cx, cy, week_start, trips, fine)
SELECT d.cx, d.cy, DATE '1970-01-01' + d.week_start, 0, array_fill(0, ARRAY[100])
FROM tmp_area_week_cells d
WHERE NOT EXISTS (SELECT FROM area_week_cells a WHERE a.cx = d.cx AND a.cy = d.cy
                  AND a.week_start = DATE '1970-01-01' + d.week_start)
ORDER BY 1, 2, 3
ON CONFLICT (cx, cy, week_start) DO NOTHING;

UPDATE area_week_cells AS a
SET trips = a.trips + d.trips,
    fine[d.s1] = a.fine[d.s1] + d.n1, fine[d.s2] = a.fine[d.s2] + d.n2,
    fine[d.s3] = a.fine[d.s3] + d.n3, fine[d.s4] = a.fine[d.s4] + d.n4,
    fine[d.s5] = a.fine[d.s5] + d.n5, fine[d.s6] = a.fine[d.s6] + d.n6,
    fine[d.s7] = a.fine[d.s7] + d.n7, fine[d.s8] = a.fine[d.s8] + d.n8
FROM tmp_area_week_cells d
WHERE d.fine IS NULL
  AND a.cx = d.cx AND a.cy = d.cy AND a.week_start = DATE '1970-01-01' + d.week_start;

UPDATE area_week_cells AS a
SET trips = a.trips + d.trips, fine = fine_add(a.fine, d.fine)
FROM tmp_area_week_cells d
WHERE d.fine IS NOT NULL
  AND a.cx = d.cx AND a.cy = d.cy AND a.week_start = DATE '1970-01-01' + d.week_start;

INSERT INTO region_hour_counts (region, window_start, trips)
SELECT region, to_timestamp(hour_start) AT TIME ZONE 'UTC', trips FROM tmp_region_hour ORDER BY 1, 2
ON CONFLICT (region, window_start) DO UPDATE SET trips = region_hour_counts.trips + EXCLUDED.trips;

INSERT INTO datasource_day_counts (datasource, day, trips)
SELECT datasource, DATE '1970-01-01' + day, trips FROM tmp_datasource_day ORDER BY 1, 2
ON CONFLICT (datasource, day) DO UPDATE SET trips = datasource_day_counts.trips + EXCLUDED.trips;

INSERT INTO region_datasource_counts (region, datasource, trips, latest_at)
SELECT region, datasource, trips, to_timestamp(latest) AT TIME ZONE 'UTC' FROM tmp_region_datasource
ORDER BY 1, 2
ON CONFLICT (region, datasource) DO UPDATE
    SET trips = region_datasource_counts.trips + EXCLUDED.trips,
        latest_at = greatest(region_datasource_counts.latest_at, EXCLUDED.latest_at);
