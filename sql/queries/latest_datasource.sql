-- From the two most commonly appearing regions, the datasource of the latest trip.
WITH top_regions AS (
    SELECT region, sum(trips) AS trips
    FROM region_datasource_counts
    GROUP BY region
    ORDER BY trips DESC, region
    LIMIT 2
)
SELECT c.datasource, c.region, c.latest_at,
       (SELECT string_agg(region || ' (' || trips || ')', ', ' ORDER BY trips DESC, region)
        FROM top_regions) AS top_regions
FROM region_datasource_counts c
JOIN top_regions USING (region)
ORDER BY c.latest_at DESC, c.datasource
LIMIT 1
