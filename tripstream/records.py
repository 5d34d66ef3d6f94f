"""The Kafka record format shared by the producer (encode) and the Spark source (decode).

One record = one chunk of up to `chunk_rows` validated rows of one file, as an Arrow IPC
stream of PAYLOAD_SCHEMA (format 2; its buffers lz4-compressed by default):
    line_no, region, origin_coord, destination_coord, datasource,
    origin_lon, origin_lat, dest_lon, dest_lat, ts
(ts = epoch seconds of the trip's datetime taken as UTC; the writer's date_time is made
from it). Headers carry the identity: file_id, first_line (the chunk key) and rows.
The record key is the file id, so one file's chunks stay ordered in one partition.

Spark carries the records, not their rows: the source (streaming/source.py) yields one
row per Kafka record (RECORD_SCHEMA, the chunk as `payload`) and the foreachBatch
writer decodes the batch's records into trip rows (ARROW_SCHEMA) with pyarrow. Carrying
200k trip rows through the JVM (Arrow to Spark rows and back) had cost about 22 us of CPU
per row, more than the Postgres writer's share.

Format 1 was headerless CSV of the same rows with date_time as text, optionally a zstd
frame; records of it left in a topic by an older producer are still decoded. Writing and
reading CSV had cost 1.1 and 1.0 us a row, the IPC stream 0.36 and 0.35 (docs/scale.md).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import zstandard

FORMAT_VERSION = b"2"
# Compressing the payload itself, not the Kafka batch, keeps it small in the broker, on
# the wire twice and through Spark, and Spark carries it compressed to the writer.
# An IPC stream starts with the continuation marker; format 1 with a digit or a zstd frame.
IPC_MAGIC = b"\xff\xff\xff\xff"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PAYLOAD_CODECS = ("zstd", "lz4", "none")

COLUMNS = (
    "line_no",
    "region",
    "origin_coord",
    "destination_coord",
    "date_time",
    "datasource",
    "origin_lon",
    "origin_lat",
    "dest_lon",
    "dest_lat",
    "ts",
)
ARROW_TYPES = {
    "line_no": pa.int32(),
    "region": pa.string(),
    "origin_coord": pa.string(),
    "destination_coord": pa.string(),
    "date_time": pa.string(),
    "datasource": pa.string(),
    "origin_lon": pa.float64(),
    "origin_lat": pa.float64(),
    "dest_lon": pa.float64(),
    "dest_lat": pa.float64(),
    "ts": pa.int64(),
}
PAYLOAD_SCHEMA = pa.schema([(c, ARROW_TYPES[c]) for c in COLUMNS if c != "date_time"])
# A record key is (partition << 44) | offset: offsets up to 17.6 trillion per partition.
RECORD_KEY_PARTITION_SHIFT = 44
# What the source yields: one row per Kafka record, its identity, provenance and payload.
RECORD_SCHEMA = "file_id bigint, chunk_line int, record_key bigint, kafka_ts bigint, payload binary"
RECORD_ARROW_SCHEMA = pa.schema(
    [
        ("file_id", pa.int64()),
        ("chunk_line", pa.int32()),
        ("record_key", pa.int64()),
        ("kafka_ts", pa.int64()),
        ("payload", pa.binary()),
    ]
)
# What the writer works on: the chunk's rows plus the identity and provenance of each.
ARROW_SCHEMA = pa.schema(
    [("file_id", pa.int64()), ("chunk_line", pa.int32())]
    + [(name, pa.timestamp("us") if name == "date_time" else ARROW_TYPES[name]) for name in COLUMNS]
    + [("record_key", pa.int64()), ("kafka_ts", pa.int64())]
)


@dataclass(frozen=True)
class Row:
    line_no: int
    region: str
    origin_coord: str
    destination_coord: str
    date_time: str
    datasource: str
    origin_lon: float
    origin_lat: float
    dest_lon: float
    dest_lat: float
    ts: int


def chunk_headers(file_id: int, first_line: int, rows: int) -> list[tuple[str, bytes]]:
    return [
        ("v", FORMAT_VERSION),
        ("file_id", str(file_id).encode()),
        ("first_line", str(first_line).encode()),
        ("rows", str(rows).encode()),
    ]


def record_key(partition: int, offset: int) -> int:
    """One int64 naming a Kafka record: the copy of a chunk that a batch keeps."""
    return (partition << RECORD_KEY_PARTITION_SHIFT) | offset


def encode_payload(rows: pa.Table, codec: str) -> bytes:
    """The record value for a chunk's rows: an IPC stream of PAYLOAD_SCHEMA, its buffers
    compressed with lz4 or zstd, or not ("none")."""
    if codec not in PAYLOAD_CODECS:
        raise ValueError(f"unknown payload codec {codec!r}: use one of {', '.join(PAYLOAD_CODECS)}")
    table = rows.select(PAYLOAD_SCHEMA.names).cast(PAYLOAD_SCHEMA)
    options = ipc.IpcWriteOptions(compression=None if codec == "none" else codec)
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, PAYLOAD_SCHEMA, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _format_1(payload: bytes) -> pa.Table:
    """A format-1 record: headerless CSV of COLUMNS, maybe a zstd frame."""
    if payload[:4] == ZSTD_MAGIC:
        payload = zstandard.ZstdDecompressor().decompress(payload)
    return pacsv.read_csv(
        io.BytesIO(payload),
        read_options=pacsv.ReadOptions(column_names=list(COLUMNS), use_threads=False),
        convert_options=pacsv.ConvertOptions(
            column_types=ARROW_TYPES, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )


def rows_batch(
    rows: pa.Table, file_id: int, first_line: int, key: int, timestamp_ms: int
) -> pa.RecordBatch:
    """A chunk's rows (PAYLOAD_SCHEMA or wider) with their identity: one ARROW_SCHEMA batch."""
    n = rows.num_rows
    columns = [pa.array([file_id] * n, pa.int64()), pa.array([first_line] * n, pa.int32())]
    for name in COLUMNS:
        if name == "date_time":
            micros = pc.multiply(rows.column("ts").combine_chunks(), 1_000_000)
            columns.append(pc.cast(micros, pa.timestamp("us")))
        else:
            columns.append(rows.column(name).combine_chunks())
    columns.append(pa.array([key] * n, pa.int64()))
    columns.append(pa.array([timestamp_ms] * n, pa.int64()))
    return pa.RecordBatch.from_arrays(columns, schema=ARROW_SCHEMA)


def decode_payload(
    payload: bytes, file_id: int, first_line: int, key: int, timestamp_ms: int
) -> pa.RecordBatch:
    """One record's chunk as an Arrow batch of ARROW_SCHEMA (vectorised, in C++)."""
    if payload[:4] == IPC_MAGIC:
        rows = ipc.open_stream(payload).read_all()
    else:
        rows = _format_1(payload)
    return rows_batch(rows, file_id, first_line, key, timestamp_ms)


def decode_records(records: pa.Table) -> pa.Table:
    """The rows (ARROW_SCHEMA) of a batch of records (RECORD_ARROW_SCHEMA)."""
    columns = [
        records.column(name).to_pylist()
        for name in ("payload", "file_id", "chunk_line", "record_key", "kafka_ts")
    ]
    batches = [decode_payload(*fields) for fields in zip(*columns, strict=True)]
    return pa.Table.from_batches(batches, schema=ARROW_SCHEMA)
