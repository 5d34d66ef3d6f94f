INSERT INTO stream_batches (checkpoint, batch_id, offsets, rows_in, rows_new, duration_ms)
VALUES (%(checkpoint)s, %(batch_id)s, %(offsets)s::jsonb, %(rows_in)s, %(rows_new)s,
        %(duration_ms)s)
ON CONFLICT (checkpoint, batch_id) DO UPDATE
SET offsets = EXCLUDED.offsets, rows_in = EXCLUDED.rows_in, rows_new = EXCLUDED.rows_new,
    duration_ms = EXCLUDED.duration_ms, committed_at = now()
