-- Weekly average number of trips in a region: trips in the period's whole ISO weeks / weeks.
SELECT %(region)s::text AS region,
       %(first_week)s::date AS first_week,
       %(last_week)s::date AS last_week,
       (%(last_week)s::date - %(first_week)s::date) / 7 + 1 AS weeks,
       coalesce(sum(trips), 0) AS trips,
       round(coalesce(sum(trips), 0)::numeric
             / ((%(last_week)s::date - %(first_week)s::date) / 7 + 1), 2) AS weekly_average
FROM region_hour_counts
WHERE region = %(region)s
  AND window_start >= %(first_week)s::date
  AND window_start < %(last_week)s::date + 7
