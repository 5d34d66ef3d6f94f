-- Recount every live count table from trip_data and return the rows that differ (none
-- when the counts are exact). Used by the tests and `tripstream bench`.
WITH expected_region_hour AS (
    SELECT region, date_trunc('hour', date_time) AS window_start, count(*) AS trips
    FROM public.trip_data GROUP BY 1, 2
), expected_datasource_day AS (
    SELECT datasource, date_time::date AS day, count(*) AS trips FROM public.trip_data GROUP BY 1, 2
), expected_similar AS (
    SELECT similar_key(floor(origin_lon * 100)::int, floor(origin_lat * 100)::int,
                       floor(dest_lon * 100)::int, floor(dest_lat * 100)::int,
                       extract(hour FROM date_time)::int) AS similar_key,
           count(*) AS trips, similar_top_trips(count(*)) AS top_trips
    FROM public.trip_data GROUP BY 1
), expected_area_fine AS (
    SELECT floor(origin_lon * 1000)::int AS fx, floor(origin_lat * 1000)::int AS fy,
           date_trunc('week', date_time)::date AS week_start, count(*) AS trips
    FROM public.trip_data GROUP BY 1, 2, 3
), expected_area_week_cells AS (  -- (cell, week, slot) -> trips: slot 0 the whole cell,
                                  -- 1-100 its fine cells (those with trips)
    SELECT floor(fx / 10.0)::int AS cx, floor(fy / 10.0)::int AS cy, week_start,
           1 + 10 * (fx - 10 * floor(fx / 10.0)::int) + (fy - 10 * floor(fy / 10.0)::int) AS slot,
           trips
    FROM expected_area_fine
    UNION ALL
    SELECT floor(fx / 10.0)::int, floor(fy / 10.0)::int, week_start, 0, sum(trips)::bigint
    FROM expected_area_fine GROUP BY 1, 2, 3
), area_week_cells_slots AS (  -- the table in the same shape
    SELECT cx, cy, week_start, 0 AS slot, trips FROM area_week_cells
    UNION ALL
    SELECT cx, cy, week_start, s::int, n::bigint
    FROM area_week_cells, unnest(fine) WITH ORDINALITY AS f(n, s) WHERE n <> 0
), expected_region_datasource AS (
    SELECT region, datasource, count(*) AS trips, max(date_time) AS latest_at
    FROM public.trip_data GROUP BY 1, 2
)
SELECT 'region_hour_counts' AS counts, count(*) AS differences FROM (
    (SELECT * FROM expected_region_hour EXCEPT SELECT * FROM region_hour_counts)
    UNION ALL (SELECT * FROM region_hour_counts EXCEPT SELECT * FROM expected_region_hour)) d
UNION ALL
SELECT 'datasource_day_counts', count(*) FROM (
    (SELECT * FROM expected_datasource_day EXCEPT SELECT * FROM datasource_day_counts)
    UNION ALL (SELECT * FROM datasource_day_counts EXCEPT SELECT * FROM expected_datasource_day)) d
UNION ALL
SELECT 'similar_trip_counts', count(*) FROM (
    (SELECT * FROM expected_similar EXCEPT SELECT * FROM similar_trip_counts)
    UNION ALL (SELECT * FROM similar_trip_counts EXCEPT SELECT * FROM expected_similar)) d
UNION ALL
SELECT 'area_week_cells', count(*) FROM (
    (SELECT * FROM expected_area_week_cells EXCEPT SELECT * FROM area_week_cells_slots)
    UNION ALL (SELECT * FROM area_week_cells_slots EXCEPT SELECT * FROM expected_area_week_cells)) d
UNION ALL
SELECT 'region_datasource_counts', count(*) FROM (
    (SELECT * FROM expected_region_datasource EXCEPT SELECT * FROM region_datasource_counts)
    UNION ALL (SELECT * FROM region_datasource_counts EXCEPT SELECT * FROM expected_region_datasource)) d
UNION ALL
SELECT 'duplicate (file_id, line_no)', count(*) FROM (
    SELECT file_id, line_no FROM public.trip_data GROUP BY 1, 2 HAVING count(*) > 1) d
