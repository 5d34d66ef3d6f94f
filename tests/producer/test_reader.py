"""Reading files in blocks: header, encodings, gzip, line numbers (pure logic on tmp files)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from producer.chunks import lines_of as chunk_lines
from producer.reader import file_digest, file_id_of, line_blocks
from tripstream.errors import FileRejectedError

HEADER = b"region,origin_coord,destination_coord,datetime,datasource\n"
ROW = b"Turin,POINT (7.67 44.99),POINT (7.72 45.06),2018-05-21 02:54:04,baba_car\n"


def lines_of(path: Path, block: int = 1000) -> list[tuple[int, bytes]]:
    return [item for first, blob in line_blocks(path, block) for item in chunk_lines(first, blob)]


def test_sample_has_100_rows_numbered_from_line_2(sample_csv: Path) -> None:
    lines = lines_of(sample_csv)
    assert len(lines) == 100
    assert lines[0][0] == 2 and lines[-1][0] == 101


def test_bom_crlf_and_gzip_read_the_same(tmp_path: Path) -> None:
    plain = tmp_path / "a.csv"
    plain.write_bytes(HEADER + ROW * 3)
    bom = tmp_path / "b.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (HEADER + ROW * 3).replace(b"\n", b"\r\n"))
    gz = tmp_path / "c.csv.gz"
    gz.write_bytes(gzip.compress(HEADER + ROW * 3))
    assert (
        [n for n, _ in lines_of(plain)]
        == [n for n, _ in lines_of(bom)]
        == [n for n, _ in lines_of(gz)]
        == [2, 3, 4]
    )


def test_blocks_are_stable_by_line_number(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(HEADER + ROW * 5 + b"\n" + ROW * 4)  # a blank line at line 7
    firsts = [first for first, _ in line_blocks(path, 3)]
    assert firsts == [2, 5, 8, 11]
    assert len(lines_of(path, 3)) == 9
    assert [n for n, _ in lines_of(path, 3)] == [2, 3, 4, 5, 6, 8, 9, 10, 11]


def test_blocks_hold_whole_lines_across_reads(tmp_path: Path) -> None:
    """Blocks are cut at newlines whatever the read size, and a last line without a newline
    is kept."""
    rows = [ROW.replace(b"Turin", b"T%d" % n) for n in range(60_000)]  # 4.5 MB: 5 reads
    path = tmp_path / "big.csv"
    path.write_bytes(HEADER + b"".join(rows)[:-1])
    blocks = list(line_blocks(path, 7_000))
    assert [first for first, _ in blocks] == list(range(2, 60_002, 7_000))
    assert b"".join(blob for _, blob in blocks) == b"".join(rows)[:-1]
    assert all(blob.count(b"\n") == 7_000 for _, blob in blocks[:-1])


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty"),
        (HEADER, "no rows"),
        (b"a,b,c\n" + ROW, "header is"),
        (b"\x00\x01\x02binary\xff\xfe\n" + ROW, "binary"),
    ],
)
def test_unusable_files_are_rejected_with_a_reason(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(FileRejectedError, match=reason) as err:
        lines_of(path)
    assert "bad.csv" in str(err.value) and "Try" in str(err.value)


def test_file_identity_is_the_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "renamed b.csv"
    a.write_bytes(HEADER + ROW)
    b.write_bytes(HEADER + ROW)
    assert file_id_of(file_digest(a)) == file_id_of(file_digest(b))
    b.write_bytes(HEADER + ROW + ROW)
    assert file_id_of(file_digest(a)) != file_id_of(file_digest(b))
