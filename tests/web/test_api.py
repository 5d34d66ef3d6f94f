"""The dashboard's JSON endpoints: the same answers as `tripstream query`, read-only, with
clear 400s for bad parameters."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_through_writer

pytestmark = pytest.mark.integration


def get(url: str, method: str = "GET") -> tuple[int, dict[str, Any], Any]:
    request = urllib.request.Request(url, method=method)  # noqa: S310 - loopback test server
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            body = response.read()
            kind = response.headers.get("content-type", "")
            return (
                response.status,
                dict(response.headers),
                json.loads(body) if "json" in kind else body,
            )
    except urllib.error.HTTPError as e:
        body = e.read()
        if "json" in e.headers.get("content-type", ""):
            body = json.loads(body)
        return e.code, dict(e.headers), body


def test_answers_match_the_cli_queries(dashboard: str, db: Any, sample_csv: Path) -> None:
    db.execute(  # file 1000, as load_through_writer names it, published by the producer
        "INSERT INTO ingest_files (file_id, sha256, name, size_bytes, state, rows_valid)"
        " VALUES (1000, 'x', 'trips.csv', 1, 'published', 100)"
    )
    load_through_writer(db.connection.dsn, [sample_csv])
    status, _, body = get(f"{dashboard}/api/latest-datasource")
    assert status == 200 and body["rows"][0]["datasource"] == "pt_search_app"
    status, _, body = get(f"{dashboard}/api/regions?datasource=cheap_mobile")
    assert [r["region"] for r in body["rows"]] == ["Hamburg", "Prague", "Turin"]
    _, _, region = get(f"{dashboard}/api/weekly-average?region=Prague")
    assert region["rows"][0]["weekly_average"] > 0
    _, _, box = get(f"{dashboard}/api/weekly-average?bbox=14.37,50.04,14.51,50.12")
    assert box["rows"][0]["weekly_average"] > 0
    _, _, similar = get(f"{dashboard}/api/similar?limit=3")
    assert len(similar["rows"]) == 3 and "hour of day" in similar["rule"]
    _, _, files = get(f"{dashboard}/api/files")
    assert [(f["name"], f["state"]) for f in files["files"]] == [("trips.csv", "committed")]
    _, _, cells = get(f"{dashboard}/api/cells")
    assert sum(c["trips"] for c in cells["cells"]) == 100


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("weekly-average?bbox=14.4,50", "MIN_LON,MIN_LAT,MAX_LON,MAX_LAT"),
        ("weekly-average?bbox=15,50,14,51", "MIN_LON <= MAX_LON"),
        ("weekly-average", "give either region or bbox"),
        ("weekly-average?region=Prague&bbox=1,2,3,4", "give either region or bbox"),
        ("weekly-average?region=Prague&from=yesterday", "is not a date"),
        ("similar?limit=many", "not a whole number"),
        ("similar?limit=0", "outside 1..1000"),
        ("regions", "datasource is missing"),
    ],
)
def test_a_bad_parameter_is_a_400_that_says_what_to_do(
    dashboard: str, db: Any, query: str, message: str
) -> None:
    status, _, body = get(f"{dashboard}/api/{query}")
    assert status == 400
    assert message in body["error"]


def test_nothing_writes_and_the_page_forbids_foreign_scripts(dashboard: str, db: Any) -> None:
    for path in ("/api/files", "/api/similar", "/events", "/"):
        assert get(dashboard + path, method="POST")[0] == 405
    status, headers, _ = get(dashboard + "/")
    assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
    status, headers, body = get(dashboard + "/vendor/plotly.min.js")
    assert status == 200 and b"plotly" in body[:2000].lower()  # from the wheel, not a CDN


def test_the_dashboard_reads_as_the_read_only_role(dashboard: str, db: Any) -> None:
    get(f"{dashboard}/api/latest-datasource")
    db.execute(
        "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'tripstream-web'"
    )
    assert db.fetchall() == [("tripstream_reader",)]  # the LISTEN connection stays open
