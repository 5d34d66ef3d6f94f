-- The regions where a datasource appeared, with its trips there and its latest trip.
SELECT region, trips, latest_at
FROM region_datasource_counts
WHERE datasource = %(datasource)s
ORDER BY region
