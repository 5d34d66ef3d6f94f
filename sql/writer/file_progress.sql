-- Add the batch's newly committed rows to each file; a file is committed once all its
-- valid rows are in and the producer has confirmed publishing all of them.
UPDATE ingest_files f
SET rows_committed = f.rows_committed + v.n,
    updated_at = now(),
    state = CASE WHEN f.state = 'published' AND f.rows_committed + v.n >= f.rows_valid
                 THEN 'committed' ELSE f.state END,
    committed_at = CASE WHEN f.state = 'published' AND f.rows_committed + v.n >= f.rows_valid
                        THEN now() ELSE f.committed_at END
FROM (VALUES %s) AS v(file_id, n)
WHERE f.file_id = v.file_id
RETURNING f.file_id, f.name, f.state, f.rows_committed, f.rows_valid
