"""The vectorised chunk builder agrees with the per-row validator (pure logic)."""

from __future__ import annotations

import datetime as dt

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from producer import chunks
from producer.chunks import build_chunk
from producer.reader import MAX_LINE_BYTES
from producer.validate import parse_row
from tripstream.errors import RowError
from tripstream.records import IPC_MAGIC, decode_payload, encode_payload


def blob(lines: list[tuple[int, bytes]]) -> bytes:
    """The bytes of a block of consecutive lines, as producer.reader.line_blocks yields it."""
    assert [n for n, _ in lines] == list(range(lines[0][0], lines[0][0] + len(lines)))
    return b"".join(raw for _, raw in lines)


def encode(chunk: chunks.BuiltChunk) -> bytes:
    return encode_payload(chunk.table, "zstd")


GOOD = b"Turin,POINT (7.67 44.99),POINT (7.72 45.06),2018-05-21 02:54:04,baba_car\n"


def test_good_and_bad_lines_split_exactly() -> None:
    lines = [
        (2, GOOD),
        (3, b"Turin,POINT (7.67 44.99),POINT (7.72 45.06),2018-02-30 02:54:04,baba_car\n"),
        (4, b'"Turin, IT",POINT (7.67 44.99),POINT (7.72 45.06),2018-05-21 02:54:04,x\n'),
        (5, b"Turin,POINT (NaN 44.99),POINT (7.72 45.06),2018-05-21 02:54:04,baba_car\n"),
        (6, b'"Turin,POINT (7.67 44.99),POINT (7.72 45.06),2018-05-21 02:54:04,baba_car\n'),
        (7, b"Tur\xffin,POINT (7.67 44.99),POINT (7.72 45.06),2018-05-21 02:54:04,b\n"),
        (8, b"Turin,POINT (7.67 44.99),POINT (7.72 45.06),2018-05-21T04:54:04+02:00,b\r\n"),
    ]
    chunk = build_chunk(2, blob(lines), name="mix.csv", max_len=100)
    assert chunk.rows == 3
    assert {e.line for e in chunk.errors} == {3, 5, 6, 7}
    batch = decode_payload(encode(chunk), file_id=1, first_line=2, key=0, timestamp_ms=0)
    assert batch.column("line_no").to_pylist() == [2, 4, 8]
    assert batch.column("region").to_pylist() == ["Turin", "Turin, IT", "Turin"]
    assert batch.column("date_time").to_pylist()[2] == dt.datetime(2018, 5, 21, 2, 54, 4)
    assert batch.column("datasource").to_pylist()[2] == "b"  # no stray \r


def test_a_plain_block_keeps_line_numbers_and_names_each_bad_line() -> None:
    """Blocks without quotes are validated as read: the lines it refuses
    still reach the per-row validator with their own numbers."""
    bad = b"Turin,POINT (7.67 44.99),POINT (7.72 45.06),2018-02-30 02:54:04,baba_car\n"
    long = (
        b"Turin,POINT (7.67 44.99),POINT (7.72 45.06),2018-05-21 02:54:04,b" + b" " * MAX_LINE_BYTES
    )
    text = GOOD * 3 + bad + GOOD + long + b"\n" + GOOD.rstrip(b"\n")  # no newline at the end
    chunk = build_chunk(10, text, name="plain.csv", max_len=100)
    assert chunk.table.column("line_no").to_pylist() == [10, 11, 12, 14, 16]
    assert [(e.line, e.reason.split(" (")[0]) for e in chunk.errors] == [
        (13, "datetime '2018-02-30 02:54:04' is not a valid date and time"),
        (15, f"line is {len(long) + 1} bytes long"),
    ]
    assert chunk.raw_errors[0] == bad


def test_blank_lines_are_skipped_and_quotes_take_the_line_by_line_path() -> None:
    quoted = b'"Turin, IT",POINT (7.67 44.99),POINT (7.72 45.06),2018-05-21 02:54:04,x\n'
    crlf = GOOD.replace(b"\n", b"\r\n")
    for text, numbers in [
        (GOOD + b"\n" + GOOD, [2, 4]),
        (GOOD + b"\n\n" + GOOD + b"\n", [2, 5]),
        (crlf + b"\r\n" + crlf + b"\r\n", [2, 4]),
        (b"\r\n" + GOOD + b"   \n" + GOOD, [3, 5]),
        (GOOD + quoted, [2, 3]),
    ]:
        chunk = build_chunk(2, text, name="lines.csv", max_len=100)
        assert chunk.table.column("line_no").to_pylist() == numbers
        assert chunk.errors == []


def test_impossible_calendar_dates_are_quarantined() -> None:
    lines = [
        (n, f"R,POINT (1 2),POINT (3 4),{when},s\n".encode())
        for n, when in enumerate(
            [
                "2018-02-30 10:00:00",
                "2019-02-29 00:00:00",
                "2020-02-29 00:00:00",
                "2018-04-31 23:59:59",
                "2018-05-28 24:00:00",
                "2018-05-28 10:00:60",
                "2018-05-28 10:00:61",
                "2018-05-28 10:60:00",
            ],
            start=2,
        )
    ]
    chunk = build_chunk(2, blob(lines), name="dates.csv", max_len=100)
    assert chunk.rows == 1
    assert sorted(e.line for e in chunk.errors) == [2, 3, 5, 6, 7, 8, 9]
    assert all("not a valid date" in e.reason for e in chunk.errors)


@pytest.mark.parametrize("codec", ["zstd", "lz4", "none"])
def test_payload_codecs_decode_to_the_same_rows(codec: str) -> None:
    lines = [
        (n, f"R,POINT (1 {n}),POINT (3 4),2018-05-04 01:02:03,s\n".encode()) for n in range(2, 50)
    ]
    chunk = build_chunk(2, blob(lines), name="c.csv", max_len=100)
    value = encode_payload(chunk.table, codec)
    assert value[:4] == IPC_MAGIC
    assert len(value) < len(encode_payload(chunk.table, "none")) or codec == "none"
    batch = decode_payload(value, file_id=1, first_line=2, key=0, timestamp_ms=0)
    assert batch.column("origin_lat").to_pylist() == [float(n) for n in range(2, 50)]
    assert batch.column("date_time").to_pylist()[0] == dt.datetime(2018, 5, 4, 1, 2, 3)


@pytest.mark.parametrize("compress", [True, False])
def test_format_1_records_left_in_the_topic_still_decode(compress: bool) -> None:
    """An older producer's records (headerless CSV, maybe a zstd frame) decode to the same
    rows as format 2's."""
    csv = (
        b"7,Prague,POINT (14.4 50.0),POINT (14.5 50.1),2018-05-28 09:03:40,cheap_mobile,"
        b"14.4,50.0,14.5,50.1,1527498220\n"
    )
    value = zstandard.ZstdCompressor(level=1).compress(csv) if compress else csv
    old = decode_payload(value, file_id=1, first_line=7, key=3, timestamp_ms=5)
    chunk = build_chunk(
        7,
        b"Prague,POINT (14.4 50.0),POINT (14.5 50.1),2018-05-28 09:03:40,cheap_mobile\n",
        name="new.csv",
        max_len=100,
    )
    new = decode_payload(encode(chunk), file_id=1, first_line=7, key=3, timestamp_ms=5)
    assert old.equals(new)


def test_an_unknown_payload_codec_is_named() -> None:
    message = "unknown payload codec 'snappy': use one of zstd, lz4, none"
    with pytest.raises(ValueError, match=message):
        encode_payload(chunks._empty(), "snappy")


label = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters=',"\n\r'), min_size=0, max_size=8
)
coord = st.one_of(
    st.floats(-200, 200),
    st.sampled_from(
        ["x", "NaN", "", "1e400", "+.5", "1.", "-.5e-3", "0x10", "1_0", "\u0661", "inf"]
    ),
)
stamp = st.one_of(
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
    st.sampled_from(
        ["2018-02-30 01:00:00", "2018-1-1 1:1:1", "2018-01-01 01:01:60", "01:01:01", "bad"]
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(label, coord, coord, coord, coord, stamp, label), min_size=1, max_size=20)
)
def test_fast_path_accepts_exactly_what_the_row_validator_accepts(rows: list[tuple]) -> None:
    lines = []
    for i, (region, a, b, c, d, when, source) in enumerate(rows):
        text = f"{region},POINT ({a} {b}),POINT ({c} {d}),{when},{source}\n"
        lines.append((i + 2, text.encode("utf-8")))
    chunk = build_chunk(2, blob(lines), name="p.csv", max_len=100)
    expected = []
    for n, raw in lines:
        try:
            expected.append(
                parse_row(raw.decode().rstrip("\n").split(","), file="p.csv", line=n).line_no
            )
        except RowError:
            pass
    got = (
        decode_payload(encode(chunk), file_id=1, first_line=2, key=0, timestamp_ms=0)
        .column("line_no")
        .to_pylist()
        if chunk.rows
        else []
    )
    assert got == expected
    assert chunk.rows + len(chunk.errors) == len(lines)
    accepted = {
        n: parse_row(raw.decode().rstrip("\n").split(","), file="p.csv", line=n)
        for n, raw in lines
        if n in expected
    }
    for row in chunk.table.to_pylist():
        want = accepted[row["line_no"]]
        assert [row[c] for c in ("origin_lon", "origin_lat", "dest_lon", "dest_lat")] == [
            want.origin_lon,
            want.origin_lat,
            want.dest_lon,
            want.dest_lat,
        ]


def test_the_warm_up_line_takes_the_fast_path() -> None:
    """The producer's start-up warm-up loads the fast path's kernels: its line must pass it."""
    good, rest = chunks._fast([(2, chunks._WARM_UP_LINE)], 100)
    assert (good.num_rows, rest) == (1, [])
