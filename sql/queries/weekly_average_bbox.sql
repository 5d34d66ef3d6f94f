-- Weekly average number of trips whose ORIGIN lies in a bounding box (edges included),
-- exact at any size, in two parts that never overlap:
--   inside:   the 0.001-degree cells fully inside the box, from area_week_cells: a 0.01-degree
--             cell wholly inside by its `trips`, one the edges cut by its fine cells inside;
--   boundary: rows in the fine cells the edges cut, checked one by one, read index-only from
--             trip_data_origin_fine_cell in four strips around the inside.
-- A 0.01-degree cell k is exactly the fine cells 10k .. 10k + 9, and fine cell (fx, fy) of
-- cell (cx, cy) is its fine[1 + 10 * (fx - 10 * cx) + (fy - 10 * cy)] (streaming/counts.py).
WITH g AS (
    SELECT ceil(%(min_lon)s * 1000)::int      AS ix_lo, floor(%(max_lon)s * 1000)::int - 1 AS ix_hi,
           ceil(%(min_lat)s * 1000)::int      AS iy_lo, floor(%(max_lat)s * 1000)::int - 1 AS iy_hi,
           floor(%(min_lon)s * 1000)::int     AS bx_lo, floor(%(max_lon)s * 1000)::int     AS bx_hi,
           floor(%(min_lat)s * 1000)::int     AS by_lo, floor(%(max_lat)s * 1000)::int     AS by_hi
),
k AS (  -- the 0.01-degree cells whose ten fine cells a side all lie inside the box
    SELECT ceil(ix_lo / 10.0)::int AS kx_lo, floor((ix_hi + 1) / 10.0)::int - 1 AS kx_hi,
           ceil(iy_lo / 10.0)::int AS ky_lo, floor((iy_hi + 1) / 10.0)::int - 1 AS ky_hi
    FROM g
),
strips AS (  -- the box's cells less the inside, in four disjoint strips (left, right, bottom,
             -- top), also when the inside is empty
    SELECT bx_lo AS x0, least(ix_lo - 1, bx_hi) AS x1, by_lo AS y0, by_hi AS y1 FROM g
    UNION ALL SELECT greatest(ix_hi + 1, ix_lo, bx_lo), bx_hi, by_lo, by_hi FROM g
    UNION ALL SELECT ix_lo, ix_hi, by_lo, least(iy_lo - 1, by_hi) FROM g
    UNION ALL SELECT ix_lo, ix_hi, greatest(iy_hi + 1, iy_lo, by_lo), by_hi FROM g
),
inside AS (
    SELECT coalesce(sum(CASE
               WHEN a.cx BETWEEN k.kx_lo AND k.kx_hi AND a.cy BETWEEN k.ky_lo AND k.ky_hi
               THEN a.trips
               ELSE (SELECT coalesce(sum(f.n), 0)
                     FROM unnest(a.fine) WITH ORDINALITY AS f(n, s)
                     WHERE a.cx * 10 + (f.s - 1) / 10 BETWEEN g.ix_lo AND g.ix_hi
                       AND a.cy * 10 + (f.s - 1) %% 10 BETWEEN g.iy_lo AND g.iy_hi)
           END), 0) AS trips
    FROM g, k, area_week_cells a
    WHERE a.cx BETWEEN floor(g.ix_lo / 10.0)::int AND floor(g.ix_hi / 10.0)::int
      AND a.cy BETWEEN floor(g.iy_lo / 10.0)::int AND floor(g.iy_hi / 10.0)::int
      AND a.week_start BETWEEN %(first_week)s::date AND %(last_week)s::date
),
boundary AS (  -- a count per strip: an aggregate is never flattened into the join, so each
               -- strip is its own index scan, with or without the newest partition's statistics
               -- (flattened, a 1M-row partition not yet analyzed was read whole: 90-520 ms)
    SELECT coalesce(sum(hit.trips), 0) AS trips
    FROM strips s
    CROSS JOIN LATERAL (
        SELECT count(*) AS trips FROM public.trip_data t
        WHERE floor(t.origin_lon * 1000)::int BETWEEN s.x0 AND s.x1
          AND floor(t.origin_lat * 1000)::int BETWEEN s.y0 AND s.y1
          AND t.origin_lon BETWEEN %(min_lon)s AND %(max_lon)s
          AND t.origin_lat BETWEEN %(min_lat)s AND %(max_lat)s
          AND t.date_time >= %(first_week)s::date
          AND t.date_time < %(last_week)s::date + 7
    ) hit
    WHERE s.x0 <= s.x1 AND s.y0 <= s.y1
),
total AS (SELECT inside.trips + boundary.trips AS trips FROM inside, boundary)
SELECT format('%%s,%%s,%%s,%%s', %(min_lon)s, %(min_lat)s, %(max_lon)s, %(max_lat)s) AS bbox,
       %(first_week)s::date AS first_week,
       %(last_week)s::date AS last_week,
       (%(last_week)s::date - %(first_week)s::date) / 7 + 1 AS weeks,
       total.trips,
       round(total.trips::numeric / ((%(last_week)s::date - %(first_week)s::date) / 7 + 1), 2)
           AS weekly_average
FROM total
