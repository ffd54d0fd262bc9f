"""How ``codethread serve`` logs: plain lines for a person, or one JSON object a line for a
log pipeline, with the ids of the work a line belongs to.

The ids come from context variables (:data:`session_id`, :data:`job_id`), which asyncio copies
into every task, so a line logged deep in the sandbox or an engine while a turn runs carries
that turn's session without passing it down. Messages are never user text or tokens (the
adapters and engines keep those out, see :mod:`engines.redact`); a JSON line escapes newlines,
so a message cannot forge a second line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import Literal

__all__ = ["JsonFormatter", "LogFormat", "job_id", "session_id", "setup"]

LogFormat = Literal["text", "json"]

#: the session the current task works on, and the durable job it runs (None: none)
session_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("session_id", default=None)
job_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("job_id", default=None)

_TEXT = "%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s"


class _Ids(logging.Filter):
    """Adds the context's ids to every record (``ids`` for text, fields for JSON)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = {"session_id": session_id.get(), "job_id": job_id.get()}
        record.__dict__.update(ids)
        parts = [f"{name[:-3]}={value}" for name, value in ids.items() if value is not None]
        record.ids = f" [{' '.join(parts)}]" if parts else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, ids, and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("session_id", "job_id"):
            if (value := getattr(record, name, None)) is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(*, level: str = "info", format: LogFormat = "text") -> None:
    """Log to stderr at ``level`` in ``format``; the chatty libraries at warning and up."""
    handler = logging.StreamHandler()
    handler.addFilter(_Ids())
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(_TEXT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for chatty in ("aiohttp.access", "httpx", "slack_bolt", "slack_sdk", "discord"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
