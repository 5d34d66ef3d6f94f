-- The driver records a micro-batch once its tasks committed their rows. A batch recorded
-- before (a replay after the driver died between this and Spark's commit log) returns no
-- row and keeps its first record.
INSERT INTO stream_batches (checkpoint, batch_id, offsets, rows_in, rows_new, duration_ms,
                            decode_ms, copy_ms, counts_ms)
VALUES (%(checkpoint)s, %(batch_id)s, %(offsets)s::jsonb, %(rows_in)s, %(rows_new)s,
        %(duration_ms)s, %(decode_ms)s, %(copy_ms)s, %(counts_ms)s)
ON CONFLICT (checkpoint, batch_id) DO NOTHING
RETURNING batch_id
