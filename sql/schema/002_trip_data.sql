-- Staging table: the seed's text columns kept verbatim for audit, plus typed columns so
-- that no query parses text, plus the row identity (file_id, line_no) and batch id.
CREATE TABLE IF NOT EXISTS public.trip_data (
    region            text             NOT NULL,
    origin_coord      text             NOT NULL,
    destination_coord text             NOT NULL,
    date_time         timestamp        NOT NULL,   -- as written in the file, taken as UTC
    datasource        text             NOT NULL,
    origin_lon        double precision NOT NULL,
    origin_lat        double precision NOT NULL,
    dest_lon          double precision NOT NULL,
    dest_lat          double precision NOT NULL,
    file_id           bigint           NOT NULL,
    line_no           integer          NOT NULL,
    batch_id          bigint           NOT NULL
);

-- Exact bounding-box answers: rows in the boundary cells of the 0.001-degree grid are read
-- index-only from this index; cells fully inside the box come from area_week_counts.
CREATE INDEX IF NOT EXISTS trip_data_origin_fine_cell ON public.trip_data
    ((floor(origin_lon * 1000)::integer), (floor(origin_lat * 1000)::integer))
    INCLUDE (origin_lon, origin_lat, date_time);
