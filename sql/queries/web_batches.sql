-- The dashboard's batch chart: the newest micro-batches of every query, oldest first.
SELECT batch_id, regexp_replace(checkpoint, '.*/', '') AS lane, rows_new, duration_ms,
       committed_at
FROM (SELECT * FROM stream_batches ORDER BY committed_at DESC LIMIT %(limit)s) AS recent
ORDER BY committed_at
