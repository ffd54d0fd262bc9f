"""The reaper's report line."""

from __future__ import annotations

import pytest

from sandbox.reaper import REAPER_SOURCE, Report, parse_report


def test_reports_parse() -> None:
    assert parse_report(b"3 - 8400 0.012\n") == Report(
        exit_code=3, signal=None, peak_rss_kb=8400, cpu_time=0.012
    )
    assert parse_report(b"- 24 9000 1.001\n") == Report(
        exit_code=None, signal=24, peak_rss_kb=9000, cpu_time=1.001
    )


@pytest.mark.parametrize("data", [
    b"", b"3 - 1\n", b"- - 1 1\n", b"3 9 1 1\n", b"x - 1 1\n", b"0 - 1 1\n0 - 1 1\n",
])  # fmt: skip
def test_anything_else_is_no_report(data: bytes) -> None:
    assert parse_report(data) is None


def test_the_source_compiles() -> None:
    compile(REAPER_SOURCE, "<reaper>", "exec")
