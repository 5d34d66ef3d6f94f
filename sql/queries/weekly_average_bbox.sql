-- Weekly average number of trips whose ORIGIN lies in a bounding box (edges included),
-- exact at any size, in three parts that never overlap:
--   coarse:   whole 0.01-degree cells inside the box, summed from area_week_coarse_counts;
--   fine:     the other 0.001-degree cells fully inside the box, from area_week_counts, in
--             four strips around the coarse block (or the whole inside when it has none);
--   boundary: rows in the cells the edges cut, checked one by one, read index-only from
--             trip_data_origin_fine_cell in four strips around the inside.
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
rings AS (  -- an outer cell range less an inner one: the inside around the coarse block,
             -- and the boundary around the inside
    SELECT 'fine' AS part, ix_lo AS ox0, ix_hi AS ox1, iy_lo AS oy0, iy_hi AS oy1,
           cx0 AS ix0, cx1 AS ix1, cy0 AS iy0, cy1 AS iy1 FROM g, c
    UNION ALL SELECT 'boundary', bx_lo, bx_hi, by_lo, by_hi, ix_lo, ix_hi, iy_lo, iy_hi FROM g
),
strips AS (  -- each ring in four strips (left, right, bottom, top), disjoint from each other
             -- and from its inner range
    SELECT part, ox0 AS x0, least(ix0 - 1, ox1) AS x1, oy0 AS y0, oy1 AS y1 FROM rings
    UNION ALL SELECT part, greatest(ix1 + 1, ix0, ox0), ox1, oy0, oy1 FROM rings
    UNION ALL SELECT part, ix0, ix1, oy0, least(iy0 - 1, oy1) FROM rings
    UNION ALL SELECT part, ix0, ix1, greatest(iy1 + 1, iy0, oy0), oy1 FROM rings
),
coarse AS (
    SELECT coalesce(sum(a.trips), 0) AS trips
    FROM area_week_coarse_counts a, k
    WHERE a.cx BETWEEN k.kx_lo AND k.kx_hi AND a.cy BETWEEN k.ky_lo AND k.ky_hi
      AND a.week_start BETWEEN %(first_week)s::date AND %(last_week)s::date
),
fine AS (
    SELECT coalesce(sum(hit.trips), 0) AS trips
    FROM strips s
    CROSS JOIN LATERAL (
        SELECT a.trips FROM area_week_counts a
        WHERE a.cx BETWEEN s.x0 AND s.x1 AND a.cy BETWEEN s.y0 AND s.y1
          AND a.week_start BETWEEN %(first_week)s::date AND %(last_week)s::date
    ) hit
    WHERE s.part = 'fine' AND s.x0 <= s.x1 AND s.y0 <= s.y1
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
    WHERE s.part = 'boundary' AND s.x0 <= s.x1 AND s.y0 <= s.y1
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
