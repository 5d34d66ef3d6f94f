"""Pure logic of the benchmark report."""

from __future__ import annotations


def test_milestones_are_one_and_three_per_decade_below_the_size() -> None:
    from tripstream.bench import milestones

    assert milestones(100_000_000) == [1_000_000, 3_000_000, 10_000_000, 30_000_000]
    assert milestones(10_000_000) == [1_000_000, 3_000_000]
    assert milestones(5000) == []


def test_rate_over_time_is_rows_per_second_over_the_window() -> None:
    from tripstream.bench import rate_over_time

    timeline = [(float(t), 100 * t) for t in range(0, 200, 10)]  # a steady 100 rows/s
    rates = rate_over_time(timeline, window=60)
    assert rates and all(r == 100 for _, r in rates)
    assert rates[0][0] == 3000  # the first point with half a window behind it
