"""Stream a trip file (CSV or gzip CSV) in blocks of lines, in bounded memory.

One physical line is one row: no field of this schema may hold a line break, so an
unterminated quote or a stray byte spoils one line only, and `line_no` is exact.
Blank lines carry no data and are skipped. Line 1 is the header; a UTF-8 BOM is allowed.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from producer.validate import HEADER
from tripstream.errors import FileRejectedError

GZIP_MAGIC = b"\x1f\x8b"
MAX_LINE_BYTES = 64 * 1024
_READ_BLOCK = 1 << 20
NEWLINE = ord("\n")


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
) -> Iterator[tuple[int, bytes]]:
    """Yield (first_line, the bytes of lines first_line .. first_line + block_lines - 1).

    Block boundaries depend only on line numbers, so re-reading a file yields the same
    blocks: (file_id, first_line) names a chunk for ever. A block of blank lines only is
    skipped. The file is read a megabyte at a time and cut at newlines found by numpy (0.1
    us a row), not line by line (0.4 us). Raises FileRejectedError for an unreadable,
    headerless or row-less file.
    """
    name = name or path.name
    seen = False
    try:
        with _open(path) as f:
            check_header(f.readline(MAX_LINE_BYTES), name)
            first, pending = 2, b""
            while data := f.read(_READ_BLOCK):
                buf = pending + data if pending else data
                newlines = np.flatnonzero(np.frombuffer(buf, np.uint8) == NEWLINE)
                start = 0
                for end in newlines[block_lines - 1 :: block_lines].tolist():
                    block, start = buf[start : end + 1], end + 1
                    if block.strip():
                        seen = True
                        yield first, block
                    first += block_lines
                pending = buf[start:]
            if pending.strip():
                seen = True
                yield first, pending
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise FileRejectedError(
            name, 0, f"the file cannot be read ({e})", "re-compressing or re-copying the file"
        ) from e
    if not seen:
        raise FileRejectedError(
            name, 2, "the file has a header but no rows", "dropping a file with at least one trip"
        )
