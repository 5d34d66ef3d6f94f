-- Weekly average number of trips whose ORIGIN lies in a bounding box (edges included),
-- exact at any size, in three parts that never overlap:
--   coarse:   whole 0.01-degree cells inside the box, summed from area_week_coarse_counts;
--   fine:     the other 0.001-degree cells fully inside the box, from area_week_counts, in
--             four strips around the coarse block (or the whole inside when it has none);
--   boundary: rows in the cells the edges cut, checked one by one, read index-only from
--             trip_data_origin_fine_cell in four strips (left, right, bottom, top).
-- A coarse cell k is exactly the fine cells 10k .. 10k + 9 (streaming/counts.py).
WITH g AS (
    SELECT ceil(%(min_lon)s * 1000)::int      AS ix_lo, floor(%(max_lon)s * 1000)::int - 1 AS ix_hi,
           ceil(%(min_lat)s * 1000)::int      AS iy_lo, floor(%(max_lat)s * 1000)::int - 1 AS iy_hi,
           floor(%(min_lon)s * 1000)::int     AS bx_lo, floor(%(max_lon)s * 1000)::int     AS bx_hi,
           floor(%(min_lat)s * 1000)::int     AS by_lo, floor(%(max_lat)s * 1000)::int     AS by_hi
),
k AS (  -- the coarse cells whose ten fine cells a side all lie inside the box
    SELECT ceil(ix_lo / 10.0)::int AS kx_lo, floor((ix_hi + 1) / 10.0)::int - 1 AS kx_hi,
           ceil(iy_lo / 10.0)::int AS ky_lo, floor((iy_hi + 1) / 10.0)::int - 1 AS ky_hi
    FROM g
),
c AS (  -- the coarse block in fine cells; an empty block sits where it leaves all to "left"
    SELECT CASE WHEN full_block THEN kx_lo * 10 ELSE ix_hi + 1 END AS cx0,
           CASE WHEN full_block THEN kx_hi * 10 + 9 ELSE ix_hi END AS cx1,
           CASE WHEN full_block THEN ky_lo * 10 ELSE iy_lo END AS cy0,
           CASE WHEN full_block THEN ky_hi * 10 + 9 ELSE iy_hi END AS cy1
    FROM g, k, LATERAL (SELECT kx_lo <= kx_hi AND ky_lo <= ky_hi AS full_block) b
),
fine_strips AS (  -- inside cells around the coarse block, disjoint from it and each other
    SELECT ix_lo AS x0, least(cx0 - 1, ix_hi) AS x1, iy_lo AS y0, iy_hi AS y1 FROM g, c
    UNION ALL SELECT greatest(cx1 + 1, cx0, ix_lo), ix_hi, iy_lo, iy_hi FROM g, c
    UNION ALL SELECT cx0, cx1, iy_lo, least(cy0 - 1, iy_hi) FROM g, c
    UNION ALL SELECT cx0, cx1, greatest(cy1 + 1, cy0, iy_lo), iy_hi FROM g, c
),
strips AS (  -- cell ranges of the boundary, disjoint from each other and from the inside
    SELECT bx_lo AS x0, least(ix_lo - 1, bx_hi) AS x1, by_lo AS y0, by_hi AS y1 FROM g
    UNION ALL SELECT greatest(ix_hi + 1, ix_lo, bx_lo), bx_hi, by_lo, by_hi FROM g
    UNION ALL SELECT ix_lo, ix_hi, by_lo, least(iy_lo - 1, by_hi) FROM g
    UNION ALL SELECT ix_lo, ix_hi, greatest(iy_hi + 1, iy_lo, by_lo), by_hi FROM g
),
coarse AS (
    SELECT coalesce(sum(a.trips), 0) AS trips
    FROM area_week_coarse_counts a, k
    WHERE a.cx BETWEEN k.kx_lo AND k.kx_hi AND a.cy BETWEEN k.ky_lo AND k.ky_hi
      AND a.week_start BETWEEN %(first_week)s::date AND %(last_week)s::date
),
fine AS (
    SELECT coalesce(sum(hit.trips), 0) AS trips
    FROM fine_strips s
    CROSS JOIN LATERAL (
        SELECT a.trips FROM area_week_counts a
        WHERE a.cx BETWEEN s.x0 AND s.x1 AND a.cy BETWEEN s.y0 AND s.y1
          AND a.week_start BETWEEN %(first_week)s::date AND %(last_week)s::date
    ) hit
    WHERE s.x0 <= s.x1 AND s.y0 <= s.y1
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
),
total AS (SELECT coarse.trips + fine.trips + boundary.trips AS trips FROM coarse, fine, boundary)
SELECT format('%%s,%%s,%%s,%%s', %(min_lon)s, %(min_lat)s, %(max_lon)s, %(max_lat)s) AS bbox,
       %(first_week)s::date AS first_week,
       %(last_week)s::date AS last_week,
       (%(last_week)s::date - %(first_week)s::date) / 7 + 1 AS weeks,
       total.trips,
       round(total.trips::numeric / ((%(last_week)s::date - %(first_week)s::date) / 7 + 1), 2)
           AS weekly_average
FROM total
