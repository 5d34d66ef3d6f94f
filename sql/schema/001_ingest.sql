-- File lifecycle, quarantine and the chunk ledger that makes writes exactly once.

CREATE TABLE IF NOT EXISTS ingest_files (
    file_id         bigint PRIMARY KEY,          -- first 8 bytes of the content's SHA-256
    sha256          text        NOT NULL,
    name            text        NOT NULL,        -- name as dropped (last drop)
    size_bytes      bigint      NOT NULL,
    state           text        NOT NULL CHECK (state IN
                        ('seen', 'publishing', 'published', 'committed', 'rejected')),
    chunk_rows      integer,                     -- fixed at first publish: chunk boundaries never move
    chunks          integer     NOT NULL DEFAULT 0,
    rows_total      bigint      NOT NULL DEFAULT 0,
    rows_valid      bigint      NOT NULL DEFAULT 0,
    rows_rejected   bigint      NOT NULL DEFAULT 0,
    rows_published  bigint      NOT NULL DEFAULT 0,
    rows_committed  bigint      NOT NULL DEFAULT 0,
    stored_path     text,                        -- where the file rests (done/ or rejected/)
    last_offsets    jsonb,                       -- {partition: last acknowledged offset}
    drops           integer     NOT NULL DEFAULT 1,
    republishes     integer     NOT NULL DEFAULT 0,
    error           text,
    seen_at         timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    committed_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ingest_files_state ON ingest_files (state) WHERE state <> 'committed';

CREATE TABLE IF NOT EXISTS quarantine (
    file_id     bigint      NOT NULL,
    file_name   text        NOT NULL,
    line_no     integer     NOT NULL,
    reason      text        NOT NULL,
    raw_line    text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (file_id, line_no)
);

-- One row per chunk (Kafka record) ever committed: (file_id, first_line) names the
-- rows first_line .. first_line + rows - 1 of that file. A replayed or re-published
-- chunk finds its key here and is skipped, so no row is inserted twice.
CREATE TABLE IF NOT EXISTS ingested_chunks (
    file_id     bigint  NOT NULL,
    first_line  integer NOT NULL,
    rows        integer NOT NULL,
    batch_id    bigint  NOT NULL,
    PRIMARY KEY (file_id, first_line)
);

-- One row per committed micro-batch, written in the same transaction as its data.
CREATE TABLE IF NOT EXISTS stream_batches (
    checkpoint   text        NOT NULL,
    batch_id     bigint      NOT NULL,
    offsets      jsonb       NOT NULL,            -- {"start": ..., "end": ...} of the source
    rows_in      bigint      NOT NULL,
    rows_new     bigint      NOT NULL,
    duration_ms  integer     NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (checkpoint, batch_id)
);
-- Where the batch's time went, its slowest task's: reading and decoding its Kafka records,
-- the COPY into trip_data, the count upserts (docs/scale.md follows them as tables grow).
ALTER TABLE stream_batches ADD COLUMN IF NOT EXISTS decode_ms integer,
                           ADD COLUMN IF NOT EXISTS copy_ms integer,
                           ADD COLUMN IF NOT EXISTS counts_ms integer;
