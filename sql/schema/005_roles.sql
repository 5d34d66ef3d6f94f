-- Read-only role for `tripstream query` and `status`: it can read, never write.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tripstream_reader') THEN
        CREATE ROLE tripstream_reader LOGIN;
    END IF;
END $$;
GRANT USAGE ON SCHEMA public TO tripstream_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO tripstream_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO tripstream_reader;
