"""``serve``'s logs: JSON lines carry the work's ids and cannot be forged by a message."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot import logs


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _capture(format: logs.LogFormat) -> io.StringIO:
    logs.setup(level="info", format=format)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return stream


async def test_json_lines_carry_the_session_of_the_task_that_logged() -> None:
    stream = _capture("json")

    async def turn() -> None:
        logs.session_id.set(42)
        logging.getLogger("codethread.test").warning("line one\nforged: line two")

    await asyncio.create_task(turn())
    logging.getLogger("codethread.test").info("outside")
    first, second = stream.getvalue().splitlines()
    entry = json.loads(first)
    assert entry["session_id"] == 42 and entry["level"] == "warning"
    assert entry["message"] == "line one\nforged: line two"  # one line, escaped
    assert "session_id" not in json.loads(second)  # the task's context stayed its own


def test_text_lines_name_the_ids_too() -> None:
    stream = _capture("text")
    token = logs.job_id.set(7)
    try:
        logging.getLogger("codethread.test").info("claimed")
    finally:
        logs.job_id.reset(token)
    assert "codethread.test [job=7]: claimed" in stream.getvalue()
