"""Which streaming queries the job runs: one per lane (pure logic)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from streaming.job import Lane, RestartBackoff, plan_lanes
from tripstream.settings import Settings, load_settings


def _settings(**streaming: Any) -> Settings:
    s = load_settings({"TRIPSTREAM_STREAMING_CHECKPOINT_DIR": "/cp"})
    return s.replace(streaming=dataclasses.replace(s.streaming, **streaming))


def test_the_express_lane_gets_its_own_query_on_the_last_partition() -> None:
    lanes = plan_lanes(
        _settings(express_trigger_seconds=0.1, trigger_seconds=0.5, bulk_queries=1), [0, 1, 2, 3]
    )
    assert lanes == [
        Lane("express", (3,), Path("/cp/express"), 0.1),
        Lane("bulk", (0, 1, 2), Path("/cp/bulk"), 0.5),
    ]


def test_bulk_partitions_are_shared_round_robin() -> None:
    lanes = plan_lanes(_settings(bulk_queries=2), [0, 1, 2, 3])
    assert [(lane.name, lane.partitions) for lane in lanes] == [
        ("express", (3,)),
        ("bulk-0", (0, 2)),
        ("bulk-1", (1,)),
    ]
    # never more bulk queries than bulk partitions
    assert len(plan_lanes(_settings(bulk_queries=5), [0, 1, 2])) == 3


def test_one_query_over_the_whole_topic_without_the_lane() -> None:
    single = [Lane("trips", (), Path("/cp"), 1.0)]  # the default bulk trigger
    assert plan_lanes(_settings(express_query=False), [0, 1, 2, 3]) == single
    assert plan_lanes(_settings(), [0]) == single
    s = _settings()
    no_lane = s.replace(kafka=dataclasses.replace(s.kafka, express_lane_bytes=0))
    assert plan_lanes(no_lane, [0, 1, 2, 3]) == single


def test_restart_backoff_doubles_to_its_cap_and_starts_over_after_a_healthy_run() -> None:
    backoff = RestartBackoff(first=2.0, cap=10.0, healthy_s=300.0)
    assert [backoff.after_failure(ran_s=5.0) for _ in range(5)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff.after_failure(ran_s=301.0) == 2.0  # it had run fine for five minutes
    assert backoff.after_failure(ran_s=1.0) == 4.0
