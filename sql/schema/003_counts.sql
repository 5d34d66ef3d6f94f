-- Windowed frequency counts, maintained by the streaming job in the same transaction as
-- the rows they count. Every table equals a recount from trip_data (tests check this).

-- Trips per region per one-hour tumbling window.
CREATE TABLE IF NOT EXISTS region_hour_counts (
    region       text      NOT NULL,
    window_start timestamp NOT NULL,
    trips        bigint    NOT NULL,
    PRIMARY KEY (region, window_start)
);

-- Trips per datasource per day.
CREATE TABLE IF NOT EXISTS datasource_day_counts (
    datasource text   NOT NULL,
    day        date   NOT NULL,
    trips      bigint NOT NULL,
    PRIMARY KEY (datasource, day)
);

-- "Similar trips": origin cell, destination cell (0.01-degree grid: floor(coord * 100))
-- and time-of-day bucket (hour of day, 0-23). The groups are nearly as many as the trips,
-- and most stay small: `top_trips` repeats `trips` only once a group reaches 10 trips
-- (similar_top_trips, the one place of that rule), and only that column is indexed for
-- "largest groups first". An update that leaves a group below 10 changes no indexed
-- column, so Postgres makes it in place (a HOT update: no index entry, room kept by the
-- fillfactor). An index on `trips` itself made every update write two index entries.
CREATE OR REPLACE FUNCTION similar_top_trips(trips bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT CASE WHEN trips >= 10 THEN trips END';

-- A group's five numbers packed into one bigint, in their order (so the key sorts as the
-- five columns would): a cell is (cx + 18000) * 18001 + (cy + 9000), one of 36001 * 18001,
-- and key = (origin * 648054001 + destination - 2e17) * 24 + hour, inside a bigint with no
-- overflow. One 8-byte key makes a 20-byte index entry instead of 36: at 100M rows the
-- index is the tree every batch inserts into at random places. streaming/counts.py packs
-- the same way; the view similar_trips unpacks.
CREATE OR REPLACE FUNCTION similar_key(ocx integer, ocy integer, dcx integer, dcy integer,
                                       hour_of_day integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ((($1::bigint + 18000) * 18001 + ($2 + 9000)) * 648054001
            + ($3::bigint + 18000) * 18001 + ($4 + 9000) - 200000000000000000) * 24 + $5
$$;

-- A database made before the packed key: its five-column table is packed into a scratch
-- table and dropped (once), so the one definition below makes the table, names and all,
-- and is filled from the scratch table (the schema is applied in one transaction).
DO $$
BEGIN
    IF EXISTS (SELECT FROM information_schema.columns WHERE table_schema = 'public'
               AND table_name = 'similar_trip_counts' AND column_name = 'origin_cx') THEN
        CREATE TEMP TABLE similar_five_columns ON COMMIT DROP AS
        SELECT similar_key(origin_cx, origin_cy, dest_cx, dest_cy, hour_of_day), trips
        FROM similar_trip_counts;
        DROP TABLE similar_trip_counts;
    END IF;
END $$;

CREATE TABLE IF NOT EXISTS similar_trip_counts (
    similar_key bigint PRIMARY KEY,
    trips       bigint NOT NULL,
    top_trips   bigint CHECK (top_trips IS NOT DISTINCT FROM similar_top_trips(trips))
) WITH (fillfactor = 85);

DO $$
BEGIN
    IF to_regclass('pg_temp.similar_five_columns') IS NOT NULL THEN
        INSERT INTO similar_trip_counts
        SELECT similar_key, trips, similar_top_trips(trips) FROM similar_five_columns ORDER BY 1;
        DROP TABLE similar_five_columns;
    END IF;
END $$;

-- The groups with their five numbers, unpacked from the key.
CREATE OR REPLACE VIEW similar_trips AS
SELECT ((q / 648054001) / 18001 - 18000)::integer AS origin_cx,
       ((q / 648054001) % 18001 - 9000)::integer AS origin_cy,
       ((q % 648054001) / 18001 - 18000)::integer AS dest_cx,
       ((q % 648054001) % 18001 - 9000)::integer AS dest_cy,
       hour_of_day, trips, top_trips, similar_key
FROM similar_trip_counts,
     LATERAL (SELECT ((similar_key % 24 + 24) % 24)::smallint AS hour_of_day) h,
     LATERAL (SELECT (similar_key - hour_of_day) / 24 + 200000000000000000 AS q) k;

-- Trips by origin per ISO week (week_start = the Monday), one row per cell of the 0.01-degree
-- grid: `trips` for the whole cell, and `fine`, the trips of each of its 10 x 10 cells of the
-- 0.001-degree grid (about 110 m). A fine cell (fx, fy) = (floor(lon * 1000), floor(lat *
-- 1000)) lies in the cell (floor(fx / 10), floor(fy / 10)), so a cell is exactly 10 x 10 fine
-- cells (floor(lon * 100) can round the other way), at fine[1 + 10 * (fx - 10 * cx) + (fy - 10
-- * cy)]. A bounding box sums the whole cells inside it from `trips` and the fine cells
-- inside it from `fine`. One row per cell, not per fine cell: a batch of 100k trips updates
-- 18k rows instead of 89k (fine) + 18k (whole cells) in two tables, and the table stays
-- small (5 city boxes' cells a week). Every batch updates many rows: half of each page is
-- kept free for their new versions, made on the same page (HOT).
CREATE TABLE IF NOT EXISTS area_week_cells (
    cx         integer   NOT NULL,
    cy         integer   NOT NULL,
    week_start date      NOT NULL,
    trips      bigint    NOT NULL,
    fine       integer[] NOT NULL CHECK (cardinality(fine) = 100),
    PRIMARY KEY (cx, cy, week_start)
) WITH (fillfactor = 50);

-- fine_add(a, b): a + b, fine cell by fine cell. One SQL expression (written out by the
-- loop below, 100 terms), which the planner inlines into the upsert: no call, no loop per row.
DO $$
BEGIN
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION fine_add(a integer[], b integer[]) RETURNS integer[]'
        ' LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
        'SELECT ARRAY[' || (SELECT string_agg(format('a[%s] + b[%s]', i, i), ', ' ORDER BY i)
                            FROM generate_series(1, 100) i) || ']');
END $$;

-- A database made before area_week_cells kept the fine cells a row each (area_week_counts)
-- and the whole cells in area_week_coarse_counts: its fine counts fill the new table once,
-- and both old tables go (the schema is applied in one transaction, before any writer).
DO $$
BEGIN
    IF to_regclass('public.area_week_counts') IS NOT NULL THEN
        INSERT INTO area_week_cells
        SELECT c.cx, c.cy, c.week_start, c.trips,
               array_agg(coalesce(f.trips, 0)::integer ORDER BY s)
        FROM (SELECT floor(cx / 10.0)::int AS cx, floor(cy / 10.0)::int AS cy, week_start,
                     sum(trips) AS trips
              FROM area_week_counts GROUP BY 1, 2, 3) c
        CROSS JOIN generate_series(1, 100) s
        LEFT JOIN area_week_counts f
          ON f.cx = c.cx * 10 + (s - 1) / 10 AND f.cy = c.cy * 10 + (s - 1) % 10
         AND f.week_start = c.week_start
        GROUP BY c.cx, c.cy, c.week_start, c.trips;
        DROP TABLE area_week_counts;
        DROP TABLE IF EXISTS area_week_coarse_counts;
    END IF;
END $$;

-- Per region and datasource: trips and the latest trip time.
CREATE TABLE IF NOT EXISTS region_datasource_counts (
    region     text      NOT NULL,
    datasource text      NOT NULL,
    trips      bigint    NOT NULL,
    latest_at  timestamp NOT NULL,
    PRIMARY KEY (region, datasource)
);

-- `tripstream query similar` reads the largest groups first without sorting them all.
CREATE INDEX IF NOT EXISTS similar_trip_counts_top ON similar_trip_counts (top_trips DESC)
    WHERE top_trips IS NOT NULL;
