-- Per-file ingestion status, newest first (or changed since %(since)s, for catch-up).
SELECT name, state, rows_total, rows_valid, rows_rejected, rows_published, rows_committed,
       republishes, seen_at, committed_at, updated_at, error
FROM ingest_files
WHERE %(since)s::timestamptz IS NULL OR updated_at > %(since)s::timestamptz
ORDER BY updated_at DESC
LIMIT %(limit)s
