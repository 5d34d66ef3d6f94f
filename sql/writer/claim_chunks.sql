-- Claim the batch's chunks; only the ones never committed before come back.
INSERT INTO ingested_chunks (file_id, first_line, rows, batch_id) VALUES %s
ON CONFLICT (file_id, first_line) DO NOTHING
RETURNING file_id, first_line
