-- Trip origins on the 0.01-degree grid (from the 0.001-degree area counts), busiest first:
-- what the dashboard's bounding-box plot draws.
SELECT floor(cx / 10.0)::integer AS cx, floor(cy / 10.0)::integer AS cy, sum(trips) AS trips
FROM area_week_counts
GROUP BY 1, 2
ORDER BY 3 DESC
LIMIT %(limit)s
