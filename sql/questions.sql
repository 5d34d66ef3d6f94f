-- The two questions as plain SQL for psql:
--   psql "$DATABASE_URL" -f sql/questions.sql [-v datasource=cheap_mobile]
\if :{?datasource}
\else
\set datasource cheap_mobile
\endif

\echo 'From the two most commonly appearing regions, which is the latest datasource?'
WITH top_regions AS (
    SELECT region, count(*) AS trips FROM public.trip_data
    GROUP BY region ORDER BY trips DESC, region LIMIT 2
)
SELECT t.datasource, t.region, t.date_time AS latest_at
FROM public.trip_data t JOIN top_regions USING (region)
ORDER BY t.date_time DESC, t.datasource
LIMIT 1;

\echo 'Which regions has the datasource appeared in?'
SELECT region, count(*) AS trips
FROM public.trip_data
WHERE datasource = :'datasource'
GROUP BY region
ORDER BY region;
