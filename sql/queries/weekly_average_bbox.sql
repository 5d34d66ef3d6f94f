-- Weekly average number of trips whose ORIGIN lies in a bounding box (edges included),
-- exact at any size: 0.001-degree cells fully inside the box are summed from
-- area_week_counts; rows in the boundary cells are checked one by one, read index-only
-- from trip_data_origin_fine_cell in four strips (left, right, bottom, top).
WITH g AS (
    SELECT ceil(%(min_lon)s * 1000)::int      AS ix_lo, floor(%(max_lon)s * 1000)::int - 1 AS ix_hi,
           ceil(%(min_lat)s * 1000)::int      AS iy_lo, floor(%(max_lat)s * 1000)::int - 1 AS iy_hi,
           floor(%(min_lon)s * 1000)::int     AS bx_lo, floor(%(max_lon)s * 1000)::int     AS bx_hi,
           floor(%(min_lat)s * 1000)::int     AS by_lo, floor(%(max_lat)s * 1000)::int     AS by_hi
),
strips AS (  -- cell ranges of the boundary, disjoint from each other and from the interior
    SELECT bx_lo AS x0, least(ix_lo - 1, bx_hi) AS x1, by_lo AS y0, by_hi AS y1 FROM g
    UNION ALL SELECT greatest(ix_hi + 1, ix_lo, bx_lo), bx_hi, by_lo, by_hi FROM g
    UNION ALL SELECT ix_lo, ix_hi, by_lo, least(iy_lo - 1, by_hi) FROM g
    UNION ALL SELECT ix_lo, ix_hi, greatest(iy_hi + 1, iy_lo, by_lo), by_hi FROM g
),
interior AS (
    SELECT coalesce(sum(a.trips), 0) AS trips
    FROM area_week_counts a, g
    WHERE a.cx BETWEEN g.ix_lo AND g.ix_hi AND a.cy BETWEEN g.iy_lo AND g.iy_hi
      AND a.week_start BETWEEN %(first_week)s::date AND %(last_week)s::date
),
boundary AS (
    SELECT count(*) AS trips
    FROM strips s
    CROSS JOIN LATERAL (
        SELECT 1 FROM public.trip_data t
        WHERE floor(t.origin_lon * 1000)::int BETWEEN s.x0 AND s.x1
          AND floor(t.origin_lat * 1000)::int BETWEEN s.y0 AND s.y1
          AND t.origin_lon BETWEEN %(min_lon)s AND %(max_lon)s
          AND t.origin_lat BETWEEN %(min_lat)s AND %(max_lat)s
          AND t.date_time >= %(first_week)s::date
          AND t.date_time < %(last_week)s::date + 7
    ) hit
    WHERE s.x0 <= s.x1 AND s.y0 <= s.y1
)
SELECT format('%%s,%%s,%%s,%%s', %(min_lon)s, %(min_lat)s, %(max_lon)s, %(max_lat)s) AS bbox,
       %(first_week)s::date AS first_week,
       %(last_week)s::date AS last_week,
       (%(last_week)s::date - %(first_week)s::date) / 7 + 1 AS weeks,
       interior.trips + boundary.trips AS trips,
       round((interior.trips + boundary.trips)::numeric
             / ((%(last_week)s::date - %(first_week)s::date) / 7 + 1), 2) AS weekly_average
FROM interior, boundary
