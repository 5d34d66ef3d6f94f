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

-- Trips by origin in the fine 0.001-degree grid (floor(coord * 1000)) per ISO week
-- (week_start = the Monday). Cells fully inside a bounding box are summed from here.
CREATE TABLE IF NOT EXISTS area_week_counts (
    cx         integer NOT NULL,
    cy         integer NOT NULL,
    week_start date    NOT NULL,
    trips      bigint  NOT NULL,
    PRIMARY KEY (cx, cy, week_start)
);

-- Vacuumed after 2% of its rows changed (20% by default): a bounding box sums ~80k of its
-- rows, and each read had to walk the versions the upserts left behind. Most upserts here
-- update a row: 20% of each page is kept free so the new version stays on its page with no
-- index entry (HOT); the upsert took 53.2 s instead of 60.3 s of the floor's 10M rows.
ALTER TABLE area_week_counts SET (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02,
                                  autovacuum_vacuum_insert_scale_factor = 0.02);

-- The same counts on the 0.01-degree grid: cell = floor(fine cell / 10), so a coarse cell is
-- exactly 10 x 10 fine cells. A bounding box sums its whole coarse cells from here and only
-- the fine cells around them from area_week_counts: on 10M rows the Prague-centre box read
-- 624 rows here and 23,400 fine ones instead of 84,000 fine ones. The table is small (cells
-- of five city boxes, per week) and every batch updates many of its rows: a third of each
-- page is kept free for their new versions (HOT).
CREATE TABLE IF NOT EXISTS area_week_coarse_counts (
    cx         integer NOT NULL,
    cy         integer NOT NULL,
    week_start date    NOT NULL,
    trips      bigint  NOT NULL,
    PRIMARY KEY (cx, cy, week_start)
) WITH (fillfactor = 65);

-- A database made before this table: filled once from the fine counts (the schema is
-- applied in one transaction, before any writer starts).
INSERT INTO area_week_coarse_counts
SELECT floor(cx / 10.0)::int, floor(cy / 10.0)::int, week_start, sum(trips)
FROM area_week_counts
WHERE NOT EXISTS (SELECT FROM area_week_coarse_counts)
GROUP BY 1, 2, 3;

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
