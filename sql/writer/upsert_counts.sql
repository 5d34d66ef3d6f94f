-- Run by streaming/writer.py inside the batch transaction, after the batch's counts were
-- COPYed into the temp tables tmp_<name>. Adds them to the live count tables.
-- Streaming queries of different lanes commit concurrently and may touch the same keys:
-- every statement takes its keys in key order, and the tables come in one fixed order, so
-- two batches wait for each other but never deadlock. The big, mostly private tables come
-- first; the small ones every batch touches come last, so their row locks are held only
-- for the last moments of the transaction.
INSERT INTO similar_trip_counts (similar_key, trips, top_trips)
SELECT similar_key, trips, similar_top_trips(trips) FROM tmp_similar ORDER BY 1
ON CONFLICT (similar_key)
DO UPDATE SET trips = similar_trip_counts.trips + EXCLUDED.trips,
              top_trips = similar_top_trips(similar_trip_counts.trips + EXCLUDED.trips);

INSERT INTO area_week_cells AS a (cx, cy, week_start, trips, fine)
SELECT cx, cy, DATE '1970-01-01' + week_start, trips, fine FROM tmp_area_week_cells
ORDER BY 1, 2, 3
ON CONFLICT (cx, cy, week_start)
DO UPDATE SET trips = a.trips + EXCLUDED.trips, fine = fine_add(a.fine, EXCLUDED.fine);

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
