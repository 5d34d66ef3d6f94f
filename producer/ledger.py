"""The file lifecycle in Postgres: seen -> publishing -> published -> committed | rejected."""

from __future__ import annotations

import json
from dataclasses import dataclass

import psycopg2.extras

from tripstream.db import retry, transaction
from tripstream.errors import RowError


@dataclass(frozen=True)
class FileRecord:
    state: str
    chunk_rows: int | None
    drops: int
    stored_path: str | None


class Ledger:
    def __init__(self, url: str) -> None:
        self.url = url

    def _run(self, sql: str, params: tuple[object, ...], what: str) -> list[tuple[object, ...]]:
        def action() -> list[tuple[object, ...]]:
            with transaction(self.url, application="tripstream-producer") as cur:
                cur.execute(sql, params)
                return list(cur.fetchall()) if cur.description else []

        return retry(action, what=what)

    def register(self, file_id: int, sha256: str, name: str, size: int) -> FileRecord:
        """Record a drop; an already-known content returns its existing state."""
        rows = self._run(
            """INSERT INTO ingest_files (file_id, sha256, name, size_bytes, state)
               VALUES (%s, %s, %s, %s, 'seen')
               ON CONFLICT (file_id) DO UPDATE
                   SET drops = ingest_files.drops + 1, updated_at = now()
               RETURNING state, chunk_rows, drops, stored_path""",
            (file_id, sha256, name, size),
            "register file",
        )
        state, chunk_rows, drops, stored = rows[0]
        return FileRecord(
            str(state),
            chunk_rows if chunk_rows is None else int(str(chunk_rows)),
            int(str(drops)),
            None if stored is None else str(stored),
        )

    def publishing(self, file_id: int, chunk_rows: int) -> None:
        self._run(
            """UPDATE ingest_files SET state = 'publishing', updated_at = now(),
                         chunk_rows = coalesce(chunk_rows, %s)
                     WHERE file_id = %s AND state IN ('seen', 'publishing')""",
            (chunk_rows, file_id),
            "mark publishing",
        )

    def progress(self, file_id: int, rows_published: int) -> None:
        self._run(
            "UPDATE ingest_files SET rows_published = %s, updated_at = now() WHERE file_id = %s",
            (rows_published, file_id),
            "progress",
        )

    def published(
        self,
        file_id: int,
        *,
        total: int,
        valid: int,
        rejected: int,
        chunks: int,
        stored_path: str,
        offsets: dict[int, int],
    ) -> None:
        """Every record acknowledged: published, or committed if the stream was faster."""
        self._run(
            """UPDATE ingest_files SET
                   rows_total = %s, rows_valid = %s, rows_rejected = %s, rows_published = %s,
                   chunks = %s, stored_path = %s, last_offsets = %s::jsonb,
                   published_at = now(), updated_at = now(),
                   state = CASE WHEN rows_committed >= %s THEN 'committed' ELSE 'published' END,
                   committed_at = CASE WHEN rows_committed >= %s THEN now() END
               WHERE file_id = %s""",
            (
                total,
                valid,
                rejected,
                valid,
                chunks,
                stored_path,
                json.dumps(offsets),
                valid,
                valid,
                file_id,
            ),
            "mark published",
        )

    def rejected(self, file_id: int, error: str, stored_path: str) -> None:
        self._run(
            """UPDATE ingest_files SET state = 'rejected', error = %s, stored_path = %s,
                         updated_at = now()
                     WHERE file_id = %s AND state IN ('seen', 'publishing', 'rejected')""",
            (error, stored_path, file_id),
            "mark rejected",
        )

    def republished(self, file_id: int, offsets: dict[int, int]) -> None:
        self._run(
            """UPDATE ingest_files SET republishes = republishes + 1, updated_at = now(),
                         published_at = now(), last_offsets = %s::jsonb WHERE file_id = %s""",
            (json.dumps(offsets), file_id),
            "mark republished",
        )

    def quarantine(
        self, file_id: int, name: str, errors: list[RowError], raws: list[bytes]
    ) -> None:
        if not errors:
            return
        values = [
            (
                file_id,
                name,
                e.line,
                f"{e.reason}. Try {e.fix}",
                raw.decode("utf-8", "replace").replace("\x00", "\\0").rstrip("\r\n"),
            )
            for e, raw in zip(errors, raws, strict=True)
        ]

        def action() -> None:
            with transaction(self.url, application="tripstream-producer") as cur:
                psycopg2.extras.execute_values(
                    cur,
                    "INSERT INTO quarantine (file_id, file_name, line_no, reason, raw_line) "
                    "VALUES %s ON CONFLICT (file_id, line_no) DO NOTHING",
                    values,
                )

        retry(action, what="quarantine rows")

    def stale(self, older_than_s: float) -> list[tuple[int, str, int, dict[str, int]]]:
        """Published files not fully committed after `older_than_s` seconds."""
        rows = self._run(
            """SELECT file_id, stored_path, chunk_rows, coalesce(last_offsets, '{}'::jsonb)
               FROM ingest_files
               WHERE state = 'published' AND published_at < now() - %s * interval '1 second'""",
            (older_than_s,),
            "find stale files",
        )
        return [
            (int(str(r[0])), str(r[1]), int(str(r[2])), dict(r[3]))  # type: ignore[call-overload]
            for r in rows
        ]

    def committed_chunks(self, file_id: int) -> set[int]:
        rows = self._run(
            "SELECT first_line FROM ingested_chunks WHERE file_id = %s",
            (file_id,),
            "read committed chunks",
        )
        return {int(str(r[0])) for r in rows}

    def stream_end_offsets(self) -> dict[int, int]:
        """How far the committed micro-batches reached in each partition. A batch records
        only the partitions it read records from, so this is the furthest end over all
        batches (of every lane), not the newest batch's: a newest batch that read one
        partition does not make the others look unread."""
        rows = self._run(
            "SELECT e.key::integer, max(e.value::bigint) "
            "FROM stream_batches b, jsonb_each_text(b.offsets->'end') AS e GROUP BY 1",
            (),
            "read stream offsets",
        )
        return {int(p): int(end) for p, end in rows}  # type: ignore[call-overload]
