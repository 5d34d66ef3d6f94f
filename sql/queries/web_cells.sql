-- Trip origins on the 0.01-degree grid, busiest first: what the dashboard's bounding-box
-- plot draws.
SELECT cx, cy, sum(trips) AS trips
FROM area_week_cells
GROUP BY 1, 2
ORDER BY 3 DESC
LIMIT %(limit)s
