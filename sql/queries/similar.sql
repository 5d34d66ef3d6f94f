-- Trips grouped by similar origin, destination and time of day. Rule: origin and destination
-- fall in the same 0.01-degree grid cell (floor(coord * 100)) and the trip starts in the same
-- hour of the day (UTC). Largest groups first.
-- The groups of at least 10 trips (similar_top_trips) are read from their small index.
-- Only if there are fewer of them than asked for are all groups sorted (then the table is
-- small, or its groups all tiny). Exact either way: a group left out of the index is smaller than
-- every group in it.
WITH top AS MATERIALIZED (
    SELECT origin_cx, origin_cy, dest_cx, dest_cy, hour_of_day, top_trips AS trips
    FROM similar_trip_counts
    WHERE top_trips IS NOT NULL
    ORDER BY top_trips DESC, origin_cx, origin_cy, dest_cx, dest_cy, hour_of_day
    LIMIT %(limit)s
), enough AS (
    SELECT count(*) >= %(limit)s AS yes FROM top
), chosen AS (
    SELECT * FROM top WHERE (SELECT yes FROM enough)
    UNION ALL
    (SELECT origin_cx, origin_cy, dest_cx, dest_cy, hour_of_day, trips
     FROM similar_trip_counts
     WHERE NOT (SELECT yes FROM enough)
     ORDER BY trips DESC, origin_cx, origin_cy, dest_cx, dest_cy, hour_of_day
     LIMIT %(limit)s)
)
SELECT origin_cx / 100.0 AS origin_lon, origin_cy / 100.0 AS origin_lat,
       dest_cx / 100.0 AS dest_lon, dest_cy / 100.0 AS dest_lat,
       lpad(hour_of_day::text, 2, '0') || ':00-' || lpad(hour_of_day::text, 2, '0') || ':59'
           AS time_of_day,
       trips
FROM chosen
ORDER BY trips DESC, origin_cx, origin_cy, dest_cx, dest_cy, hour_of_day
