"""Turn a block of a file's lines into one chunk of rows: vectorised checks, exact fallbacks.

The fast path validates a whole block with pyarrow compute (the same rules as
producer.validate, expressed as regex/range/strptime kernels). A block of plain lines (no
quote: nearly every block) is parsed at once, as it was read; a block with quotes is
split into lines first. Any line the fast path does not accept goes through the per-row
Python validator, which either accepts it (e.g. an ISO datetime with an offset) or names
the exact reason. So the fast path never decides an error alone.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from producer.reader import MAX_LINE_BYTES, split_fields
from producer.validate import CONTROL_RE, HEADER, POINT_RE, parse_row
from tripstream.errors import RowError
from tripstream.records import ARROW_TYPES, COLUMNS, Row

_POINT_RE = "(?i)" + POINT_RE  # RE2 spelling of re.IGNORECASE
_TS_FORMAT = "%Y-%m-%d %H:%M:%S"
_TS_SHAPE = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
Line = tuple[int, bytes]  # (line number, the line's bytes)
_MIN_TS, _MAX_TS = -2208988800, 4133980799  # 1900-01-01 .. 2100-12-31 23:59:59 UTC


@dataclass(frozen=True)
class BuiltChunk:
    first_line: int
    table: pa.Table  # the valid rows, in line order (records.COLUMNS)
    errors: list[RowError]
    raw_errors: list[bytes]

    @property
    def rows(self) -> int:
        return self.table.num_rows


def _label_ok(col: pa.Array, max_len: int) -> pa.Array:
    """Which labels pass. A column holds a few distinct regions or datasources, so each
    distinct value is checked once (0.03 us a row, against 0.22 for checking every row)."""
    encoded = pc.dictionary_encode(col)
    values = encoded.dictionary
    ok = pc.and_(
        pc.and_(
            pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0),
            pc.less_equal(pc.utf8_length(values), max_len),
        ),
        pc.invert(pc.match_substring_regex(values, CONTROL_RE)),
    )
    return pc.take(ok, encoded.indices)


def _points(col: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    parts = pc.extract_regex(col, _POINT_RE)
    lon = pc.cast(pc.struct_field(parts, "lon"), pa.float64())
    lat = pc.cast(pc.struct_field(parts, "lat"), pa.float64())
    ok = pc.and_(
        pc.and_(pc.greater_equal(lon, -180.0), pc.less_equal(lon, 180.0)),
        pc.and_(pc.greater_equal(lat, -90.0), pc.less_equal(lat, 90.0)),
    )
    return lon, lat, pc.fill_null(ok, False)


def _parse(blob: bytes, lines: int) -> pa.Table | None:
    """The five columns of `lines` quote-free CSV lines as text; None unless every line is
    5 fields of UTF-8 (such lines take the per-row path, which names the fault)."""
    try:
        table = pacsv.read_csv(
            io.BytesIO(blob),
            read_options=pacsv.ReadOptions(column_names=list(HEADER), use_threads=False),
            parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in HEADER}, strings_can_be_null=False
            ),
        )
    except pa.ArrowInvalid:
        return None
    return table if table.num_rows == lines else None


def _validate(table: pa.Table, line_no: pa.Array, max_len: int) -> tuple[pa.Table, pa.Array]:
    """The accepted rows (records.COLUMNS) of parsed lines, and which lines they are."""
    cols = {c: table.column(c).combine_chunks() for c in HEADER}
    cols["datasource"] = pc.utf8_rtrim(cols["datasource"], characters="\r")
    olon, olat, o_ok = _points(cols["origin_coord"])
    dlon, dlat, d_ok = _points(cols["destination_coord"])
    when = pc.utf8_trim_whitespace(cols["datetime"])
    ts, ts_ok = _timestamps(when)
    line_bytes = pc.binary_length(table.column(HEADER[0]))
    for c in HEADER[1:]:
        line_bytes = pc.add(line_bytes, pc.binary_length(table.column(c)))
    short = pc.less_equal(pc.add(line_bytes, len(HEADER)), MAX_LINE_BYTES)  # + commas, newline
    ok = pc.and_(
        pc.and_(pc.and_(o_ok, d_ok), short),
        pc.and_(
            ts_ok,
            pc.and_(_label_ok(cols["region"], max_len), _label_ok(cols["datasource"], max_len)),
        ),
    )
    good = pa.table(
        {
            "line_no": line_no,
            "region": cols["region"],
            "origin_coord": cols["origin_coord"],
            "destination_coord": cols["destination_coord"],
            "date_time": when,
            "datasource": cols["datasource"],
            "origin_lon": olon,
            "origin_lat": olat,
            "dest_lon": dlon,
            "dest_lat": dlat,
            "ts": ts,
        }
    ).filter(ok)
    return good, ok


def _plain_block(first_line: int, blob: bytes, max_len: int) -> tuple[pa.Table, list[Line]] | None:
    """A block whose every line is one unquoted row, validated as read: the accepted rows
    and the lines left over. None if the block has quotes or starts with a blank line.

    A blank line inside the block parses as a row of empty fields, which fails the checks:
    it is dropped from the lines left over, as blank lines carry no data (searching the
    block for them first had cost 0.2 us a row)."""
    if b'"' in blob or blob[:1] in (b"\n", b"\r"):
        return None
    n = blob.count(b"\n") + (not blob.endswith(b"\n"))
    table = _parse(blob, n)
    if table is None:
        return None
    line_no = pa.array(np.arange(first_line, first_line + n, dtype=np.int32))
    good, ok = _validate(table, line_no, max_len)
    if good.num_rows == n:
        return good, []
    lines = blob.split(b"\n")
    rest = [
        (first_line + i, lines[i] + b"\n")
        for i in pc.indices_nonzero(pc.invert(ok)).to_pylist()
        if lines[i].strip()
    ]
    return good, rest


def _fast(lines: list[Line], max_len: int) -> tuple[pa.Table, list[Line]]:
    """Validate simple lines vectorised; return the accepted table and the lines left over."""
    simple: list[Line] = []
    rest: list[Line] = []
    for item in lines:
        raw = item[1]
        if raw.count(b",") == 4 and b'"' not in raw and len(raw) <= MAX_LINE_BYTES:
            simple.append(item)
        else:
            rest.append(item)
    if not simple:
        return _empty(), rest
    blob = b"".join(raw if raw.endswith(b"\n") else raw + b"\n" for _, raw in simple)
    table = _parse(blob, len(simple))
    if table is None:
        return _empty(), lines
    good, ok = _validate(table, pa.array([n for n, _ in simple], pa.int32()), max_len)
    ok_list = ok.to_pylist()
    rest.extend(item for item, accepted in zip(simple, ok_list, strict=True) if not accepted)
    return good, rest


def lines_of(first_line: int, blob: bytes) -> list[Line]:
    """The numbered non-blank lines of a block."""
    pieces = blob.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    return [(first_line + i, raw + b"\n") for i, raw in enumerate(pieces) if raw.strip()]


def _timestamps(when: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Epoch seconds of 'YYYY-MM-DD HH:MM:SS' texts, and which texts are exact and in range.

    strptime takes '2018-5-4 1:2:3' and rolls impossible values over (2018-02-30 ->
    2018-03-02, second 60 -> the next minute). A text is accepted only if it has the exact
    shape and its day and second survive the parse: then it prints back as itself, so it is
    already the normalised date_time. Printing every stamp back (strftime) to compare had
    cost 0.9 us per row, a fifth of the producer's validation.
    """
    stamp = pc.strptime(when, format=_TS_FORMAT, unit="s", error_is_null=True)
    ts = pc.cast(stamp, pa.int64())
    shaped = pc.match_substring_regex(when, _TS_SHAPE)
    digits = pc.if_else(shaped, when, "1970-01-01 00:00:00")  # every slice casts

    def field(start: int) -> pa.Array:
        return pc.cast(pc.utf8_slice_codeunits(digits, start, start + 2), pa.int64())

    same = pc.and_(pc.equal(field(8), pc.day(stamp)), pc.equal(field(17), pc.second(stamp)))
    in_range = pc.and_(pc.greater_equal(ts, _MIN_TS), pc.less_equal(ts, _MAX_TS))
    return ts, pc.fill_null(pc.and_(pc.and_(shaped, same), in_range), False)


def _empty() -> pa.Table:
    return pa.table({c: pa.array([], ARROW_TYPES[c]) for c in COLUMNS})


def _rows_table(rows: list[Row]) -> pa.Table:
    return pa.table({c: pa.array([getattr(r, c) for r in rows], ARROW_TYPES[c]) for c in COLUMNS})


def _slow(
    lines: list[Line], name: str, max_len: int
) -> tuple[list[Row], list[RowError], list[bytes]]:
    rows: list[Row] = []
    errors: list[RowError] = []
    raws: list[bytes] = []
    for line_no, raw in lines:
        try:
            rows.append(
                parse_row(
                    split_fields(_decode(raw, name, line_no)),
                    file=name,
                    line=line_no,
                    max_len=max_len,
                )
            )
        except RowError as e:
            errors.append(e)
            raws.append(raw)
        except Exception as e:  # csv.Error for a broken quote
            errors.append(
                RowError(
                    name,
                    line_no,
                    f"malformed CSV ({e})",
                    "closing every opening quote on the same line",
                )
            )
            raws.append(raw)
    return rows, errors, raws


def _decode(raw: bytes, name: str, line: int) -> str:
    if len(raw) > MAX_LINE_BYTES:
        raise RowError(
            name,
            line,
            f"line is {len(raw)} bytes long (max {MAX_LINE_BYTES})",
            "splitting the data into one trip per line",
        )
    if b"\x00" in raw:
        raise RowError(name, line, "line contains NUL bytes", "re-exporting the file as text CSV")
    try:
        return raw.rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError as e:
        raise RowError(
            name, line, f"line is not valid UTF-8 (byte {e.start})", "saving the file as UTF-8"
        ) from e


def build_chunk(first_line: int, blob: bytes, *, name: str, max_len: int) -> BuiltChunk:
    """Validate one block (the bytes of its lines, producer.reader.line_blocks)."""
    plain = _plain_block(first_line, blob, max_len)
    good, rest = plain if plain is not None else _fast(lines_of(first_line, blob), max_len)
    rows, errors, raws = _slow(rest, name, max_len)
    if rows:
        good = pa.concat_tables([good, _rows_table(rows)])
        good = good.sort_by("line_no")
    return BuiltChunk(first_line, good, errors, raws)


_WARM_UP_LINE = b"Prague,POINT (14.4 50.0),POINT (14.5 50.1),2018-05-28 09:03:40,warm_up"


def warm_up() -> None:
    """Validate one made-up line once, at start: the first call loads the pyarrow kernels
    and compiles the regexes (0.3 s), which a user's first file would otherwise wait for."""
    build_chunk(2, _WARM_UP_LINE, name="warm-up", max_len=100)
