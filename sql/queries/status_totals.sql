-- Totals by state, plus the newest micro-batch.
SELECT state, count(*) AS files, sum(rows_valid) AS rows_valid,
       sum(rows_rejected) AS rows_rejected, sum(rows_committed) AS rows_committed,
       (SELECT max(committed_at) FROM stream_batches) AS last_batch_at
FROM ingest_files
GROUP BY state
ORDER BY state
