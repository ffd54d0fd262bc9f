"""Small statistics shared by the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["pct"]


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 to 100) of ``values``, by the nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
