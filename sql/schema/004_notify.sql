-- Push every file state change to listeners (`tripstream status --follow`): no polling.
CREATE OR REPLACE FUNCTION notify_ingest_file() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tripstream_status', json_build_object(
        'kind', 'file',
        'file_id', NEW.file_id, 'name', NEW.name, 'state', NEW.state,
        'rows_total', NEW.rows_total, 'rows_valid', NEW.rows_valid,
        'rows_rejected', NEW.rows_rejected, 'rows_published', NEW.rows_published,
        'rows_committed', NEW.rows_committed, 'updated_at', NEW.updated_at)::text);
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS ingest_files_notify ON ingest_files;
CREATE TRIGGER ingest_files_notify AFTER INSERT OR UPDATE ON ingest_files
    FOR EACH ROW EXECUTE FUNCTION notify_ingest_file();
