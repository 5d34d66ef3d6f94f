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
-- and time-of-day bucket (hour of day, 0-23).
CREATE TABLE IF NOT EXISTS similar_trip_counts (
    origin_cx   integer  NOT NULL,
    origin_cy   integer  NOT NULL,
    dest_cx     integer  NOT NULL,
    dest_cy     integer  NOT NULL,
    hour_of_day smallint NOT NULL,
    trips       bigint   NOT NULL,
    PRIMARY KEY (origin_cx, origin_cy, dest_cx, dest_cy, hour_of_day)
);

-- Trips by origin in the fine 0.001-degree grid (floor(coord * 1000)) per ISO week
-- (week_start = the Monday). Cells fully inside a bounding box are summed from here.
CREATE TABLE IF NOT EXISTS area_week_counts (
    cx         integer NOT NULL,
    cy         integer NOT NULL,
    week_start date    NOT NULL,
    trips      bigint  NOT NULL,
    PRIMARY KEY (cx, cy, week_start)
);

-- Per region and datasource: trips and the latest trip time.
CREATE TABLE IF NOT EXISTS region_datasource_counts (
    region     text      NOT NULL,
    datasource text      NOT NULL,
    trips      bigint    NOT NULL,
    latest_at  timestamp NOT NULL,
    PRIMARY KEY (region, datasource)
);

-- `tripstream query similar` reads the largest groups first without sorting them all.
CREATE INDEX IF NOT EXISTS similar_trip_counts_trips ON similar_trip_counts (trips DESC);
