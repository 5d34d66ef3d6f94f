-- The dashboard's file list: every file's state and progress, newest first.
SELECT file_id::text AS file_id, name, state, rows_total, rows_valid, rows_rejected,
       rows_published, rows_committed, error, updated_at
FROM ingest_files
ORDER BY updated_at DESC
LIMIT %(limit)s
