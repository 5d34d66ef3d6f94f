-- Trips grouped by similar origin, destination and time of day. Rule: origin and destination
-- fall in the same 0.01-degree grid cell (floor(coord * 100)) and the trip starts in the same
-- hour of the day (UTC). Largest groups first.
SELECT origin_cx / 100.0 AS origin_lon, origin_cy / 100.0 AS origin_lat,
       dest_cx / 100.0 AS dest_lon, dest_cy / 100.0 AS dest_lat,
       lpad(hour_of_day::text, 2, '0') || ':00-' || lpad(hour_of_day::text, 2, '0') || ':59'
           AS time_of_day,
       trips
FROM similar_trip_counts
ORDER BY trips DESC, origin_cx, origin_cy, dest_cx, dest_cy, hour_of_day
LIMIT %(limit)s
