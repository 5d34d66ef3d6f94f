-- Trips grouped by similar origin, destination and time of day. Rule: origin and destination
-- fall in the same 0.01-degree grid cell (floor(coord * 100)) and the trip starts in the same
-- hour of the day (UTC). Largest groups first.
-- The groups of at least 10 trips (similar_top_trips) are read from their small index.
-- Only if there are fewer of them than asked for are all groups sorted (then the table is
-- small, or its groups all tiny). Exact either way: a group left out of the index is smaller than
-- every group in it.
-- The key sorts as the five numbers do (sql/schema/003_counts.sql), so ties go by cell, then hour.
WITH top AS MATERIALIZED (
    SELECT similar_key, top_trips AS trips
    FROM similar_trip_counts
    WHERE top_trips IS NOT NULL
    ORDER BY top_trips DESC, similar_key
    LIMIT %(limit)s
), enough AS (
    SELECT count(*) >= %(limit)s AS yes FROM top
), chosen AS (
    SELECT * FROM top WHERE (SELECT yes FROM enough)
    UNION ALL
    (SELECT similar_key, trips
     FROM similar_trip_counts
     WHERE NOT (SELECT yes FROM enough)
     ORDER BY trips DESC, similar_key
     LIMIT %(limit)s)
)
SELECT g.origin_cx / 100.0 AS origin_lon, g.origin_cy / 100.0 AS origin_lat,
       g.dest_cx / 100.0 AS dest_lon, g.dest_cy / 100.0 AS dest_lat,
       lpad(g.hour_of_day::text, 2, '0') || ':00-' || lpad(g.hour_of_day::text, 2, '0') || ':59'
           AS time_of_day,
       c.trips
FROM chosen c JOIN similar_trips g USING (similar_key)
ORDER BY c.trips DESC, c.similar_key
