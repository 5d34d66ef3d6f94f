"""Stream a trip file (CSV or gzip CSV) in blocks of lines, in bounded memory.

One physical line is one row: no field of this schema may hold a line break, so an
unterminated quote or a stray byte spoils one line only, and `line_no` is exact.
Blank lines carry no data and are skipped. Line 1 is the header; a UTF-8 BOM is allowed.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from producer.validate import HEADER
from tripstream.errors import FileRejectedError

GZIP_MAGIC = b"\x1f\x8b"
MAX_LINE_BYTES = 64 * 1024
_READ_BLOCK = 1 << 20

Line = tuple[int, bytes]


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes: the file's identity, whatever its name."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_READ_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def file_id_of(sha256: str) -> int:
    """A signed 64-bit id from the first 8 bytes of the digest (Postgres bigint)."""
    return int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)


def _open(path: Path) -> BinaryIO:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def split_fields(text: str) -> list[str]:
    if '"' not in text:
        return text.split(",")
    return next(csv.reader([text], strict=True))


def check_header(raw: bytes, name: str) -> None:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw.strip():
        raise FileRejectedError(
            name, 1, "the file is empty", "dropping a CSV whose first line is " + ",".join(HEADER)
        )
    try:
        text = raw.rstrip(b"\r\n").decode("utf-8")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL byte")
        columns = tuple(c.strip().lower() for c in split_fields(text))
    except (UnicodeDecodeError, csv.Error) as e:
        raise FileRejectedError(
            name, 1, "the file is binary or not UTF-8 text", "exporting it as a UTF-8 CSV"
        ) from e
    if columns != HEADER:
        raise FileRejectedError(
            name, 1, f"the header is {text[:120]!r}", "the header " + ",".join(HEADER)
        )


def line_blocks(
    path: Path, block_lines: int, *, name: str | None = None
) -> Iterator[tuple[int, list[Line]]]:
    """Yield (first_line, [(line_no, raw_bytes), ...]) per block of `block_lines` lines.

    Block boundaries depend only on line numbers, so re-reading a file yields the same
    blocks: (file_id, first_line) names a chunk for ever. Raises FileRejectedError for an
    unreadable, headerless or row-less file.
    """
    name = name or path.name
    seen = 0
    try:
        with _open(path) as f:
            check_header(f.readline(MAX_LINE_BYTES), name)
            first, block = 2, list[Line]()
            line_no = 1
            for line_no, raw in enumerate(f, start=2):
                if line_no - first >= block_lines:
                    if block:
                        yield first, block
                    first, block = line_no - (line_no - 2) % block_lines, []
                if raw.strip():
                    block.append((line_no, raw))
                    seen += 1
            if block:
                yield first, block
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise FileRejectedError(
            name, 0, f"the file cannot be read ({e})", "re-compressing or re-copying the file"
        ) from e
    if seen == 0:
        raise FileRejectedError(
            name, 2, "the file has a header but no rows", "dropping a file with at least one trip"
        )
