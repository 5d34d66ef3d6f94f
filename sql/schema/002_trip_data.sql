-- Staging table: the seed's text columns kept verbatim for audit, plus typed columns so
-- that no query parses text, plus the row identity (file_id, line_no) and batch id.
-- Partitioned by batch id, 50 micro-batches (up to 10M rows) per partition: new rows only
-- ever go to the newest partition, so the cell index the writer keeps hot stays small
-- however large the table grows (one index over 100M rows outgrew shared_buffers, and the
-- writer slowed from 49k to 29k rows/s). The writer creates partitions as it needs them.
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
) PARTITION BY RANGE (batch_id);

-- Exact bounding-box answers: rows in the boundary cells of the 0.001-degree grid are read
-- index-only from this index; cells fully inside the box come from area_week_cells.
CREATE INDEX IF NOT EXISTS trip_data_origin_fine_cell ON public.trip_data
    ((floor(origin_lon * 1000)::integer), (floor(origin_lat * 1000)::integer))
    INCLUDE (origin_lon, origin_lat, date_time);

-- The partition for a batch id, created on first use by the streaming writer, in a short
-- transaction before the batch's own (creating a partition locks trip_data until commit).
-- Vacuumed after every 5% more rows (20% by default), so the bounding-box query's reads of
-- the newest rows stay index-only (the visibility map says they need no heap visit).
-- An older, unpartitioned trip_data is left as it is.
CREATE OR REPLACE FUNCTION public.trip_data_partition_for(batch bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    per_partition CONSTANT bigint := 50;
    lo   bigint := floor(batch::numeric / per_partition)::bigint * per_partition;
    name text := format('trip_data_b%s', CASE WHEN lo < 0 THEN 'm' || -lo ELSE lo::text END);
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'public.trip_data'::regclass) <> 'p' THEN
        RETURN 'trip_data';
    END IF;
    IF to_regclass('public.' || name) IS NULL THEN
        -- Two lanes may need the same new partition at once: one creates it, one waits.
        PERFORM pg_advisory_xact_lock(hashtext('tripstream.trip_data_partition'));
        -- The waiter's catalog cache may not show the table the other just committed
        -- (an advisory lock reads no invalidations): its CREATE then finds it.
        BEGIN
            EXECUTE format('CREATE TABLE public.%I PARTITION OF public.trip_data'
                           ' FOR VALUES FROM (%s) TO (%s)'
                           ' WITH (autovacuum_vacuum_insert_scale_factor = 0.05)',
                           name, lo, lo + per_partition);
        EXCEPTION WHEN duplicate_table OR unique_violation THEN
            NULL;
        END;
    END IF;
    RETURN name;
END
$$;
