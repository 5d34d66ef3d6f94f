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

CREATE TABLE IF NOT EXISTS similar_trip_counts (
    origin_cx   integer  NOT NULL,
    origin_cy   integer  NOT NULL,
    dest_cx     integer  NOT NULL,
    dest_cy     integer  NOT NULL,
    hour_of_day smallint NOT NULL,
    trips       bigint   NOT NULL,
    top_trips   bigint   CHECK (top_trips IS NOT DISTINCT FROM similar_top_trips(trips)),
    PRIMARY KEY (origin_cx, origin_cy, dest_cx, dest_cy, hour_of_day)
) WITH (fillfactor = 85);

-- A database made before top_trips: add the column, fill it, drop the old index (once).
DO $$
BEGIN
    IF to_regclass('public.similar_trip_counts_trips') IS NOT NULL THEN
        ALTER TABLE similar_trip_counts ADD COLUMN IF NOT EXISTS top_trips bigint;
        UPDATE similar_trip_counts SET top_trips = similar_top_trips(trips)
            WHERE similar_top_trips(trips) IS NOT NULL;
        ALTER TABLE similar_trip_counts ADD CONSTRAINT similar_trip_counts_top_trips_check
            CHECK (top_trips IS NOT DISTINCT FROM similar_top_trips(trips));
        ALTER TABLE similar_trip_counts SET (fillfactor = 85);
        DROP INDEX similar_trip_counts_trips;
    END IF;
END $$;

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
-- rows, and each read had to walk the versions the upserts left behind.
ALTER TABLE area_week_counts SET (autovacuum_vacuum_scale_factor = 0.02,
                                  autovacuum_vacuum_insert_scale_factor = 0.02);

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
