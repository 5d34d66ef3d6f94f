"""The JVM-connector path's decoding (pure logic: connector-shaped Arrow rows in)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest

from streaming.connector import to_records
from tripstream.errors import SetupError
from tripstream.records import (
    ARROW_SCHEMA,
    RECORD_ARROW_SCHEMA,
    chunk_headers,
    decode_records,
    record_key,
)
from tripstream.settings import load_settings

CHUNK = (
    b"7,Prague,POINT (14.4 50.0),POINT (14.5 50.1),2018-05-28 09:03:40,cheap_mobile,"
    b"14.4,50.0,14.5,50.1,1527498220\n"
    b"8,Turin,POINT (7.6 45.0),POINT (7.7 45.1),2018-05-21 02:54:04,baba_car,"
    b"7.6,45.0,7.7,45.1,1526871244\n"
)
CONNECTOR_SCHEMA = pa.schema(
    [
        ("value", pa.binary()),
        ("headers", pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
    ]
)


def test_connector_rows_become_the_python_sources_records_and_decode_to_rows() -> None:
    at = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
    batch = pa.RecordBatch.from_pylist(
        [
            {
                "value": CHUNK,
                "headers": [{"key": k, "value": v} for k, v in chunk_headers(99, 7, 2)],
                "partition": 3,
                "offset": 12,
                "timestamp": at,
            }
        ],
        schema=CONNECTOR_SCHEMA,
    )
    (out,) = list(to_records(iter([batch])))
    assert out.schema == RECORD_ARROW_SCHEMA
    assert out.num_rows == 1 and out.column("payload")[0].as_py() == CHUNK
    decoded = decode_records(pa.Table.from_batches([out]))
    assert decoded.schema == ARROW_SCHEMA
    rows = decoded.to_pylist()
    assert [r["line_no"] for r in rows] == [7, 8]
    assert {r["file_id"] for r in rows} == {99}
    assert {r["chunk_line"] for r in rows} == {7}
    assert {r["record_key"] for r in rows} == {record_key(3, 12)}
    assert {r["kafka_ts"] for r in rows} == {int(at.timestamp() * 1000)}
    assert rows[1]["region"] == "Turin" and rows[1]["ts"] == 1526871244


def test_an_empty_input_batch_yields_nothing() -> None:
    empty = pa.RecordBatch.from_pylist([], schema=CONNECTOR_SCHEMA)
    assert list(to_records(iter([empty]))) == []


def test_an_unknown_source_format_is_a_setup_error_naming_the_choices(tmp_path: Path) -> None:
    from streaming.job import start_query

    settings = load_settings({"TRIPSTREAM_STREAMING_SOURCE_FORMAT": "kafak"})
    with pytest.raises(SetupError, match="Try: tripkafka"):
        start_query(cast(Any, None), settings, checkpoint=tmp_path / "cp")


@pytest.mark.integration
def test_the_jvm_connector_without_its_jar_is_a_setup_error(spark: Any, tmp_path: Path) -> None:
    from streaming.job import start_query

    settings = load_settings({"TRIPSTREAM_STREAMING_SOURCE_FORMAT": "kafka"})
    with pytest.raises(SetupError, match="spark-sql-kafka"):
        start_query(spark, settings, checkpoint=tmp_path / "cp")
