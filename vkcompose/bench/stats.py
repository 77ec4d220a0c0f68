"""Latency summaries: nearest-rank percentiles over a list of durations (pure).

>>> summary = summarize([0.3, 0.1, 0.2, 0.4])
>>> (summary.count, summary.p50, summary.p99, summary.max)
(4, 0.2, 0.4, 0.4)
>>> summarize([]).count
0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

__all__ = ["LatencySummary", "percentile", "summarize"]


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of an ascending, non-empty list.

    It is always one of the values, and never decreases as ``q`` grows.
    """
    if not ordered:
        raise ValueError("percentile of an empty list")
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is not in (0, 100]")
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


@attrs.frozen
class LatencySummary:
    """Count, mean, p50/p90/p99 and max of durations in seconds (zeros when empty)."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    def to_json(self) -> dict[str, float | int]:
        """The summary as a JSON object."""
        return attrs.asdict(self)


def summarize(values: Sequence[float]) -> LatencySummary:
    """Summarize durations (seconds)."""
    if not values:
        return LatencySummary(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    ordered = sorted(values)
    return LatencySummary(
        count=len(ordered),
        mean=math.fsum(ordered) / len(ordered),
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        max=ordered[-1],
    )
