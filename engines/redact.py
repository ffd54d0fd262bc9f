"""Keep credentials that ride in URLs out of the log.

A ``base_url`` may carry a secret: ``https://user:pass@proxy/v1`` (a reverse proxy with basic
auth) or ``https://host/v1?api-key=…`` (Azure-style gateways). The HTTP client writes every
request's full URL to its log (httpx2's INFO line ``HTTP Request: POST https://user:pass@…``),
and a traceback may quote it, so the OpenAI engine installs :class:`RedactFilter` on the
loggers of the HTTP stack, the SDK and this package when it builds its client. The filter
rewrites a record's message (and its traceback text) with every URL's user-info and query
values masked; nothing is dropped, so operators keep the status lines.

A logger filter applies only to records created on that very logger, not its children, so
:func:`protect_loggers` adds it to each existing logger under the given prefixes (the module
loggers exist once the SDK is imported).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["LOGGER_PREFIXES", "RedactFilter", "protect_loggers", "redact_url", "scrub"]

#: the loggers that may see a request URL: the HTTP stack (both spellings), the SDK, engines
LOGGER_PREFIXES = ("httpx2", "httpcore2", "httpx", "httpcore", "openai", "engines")
#: what a secret is replaced with
MASK = "***"

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def redact_url(url: str) -> str:
    """``url`` with its user-info replaced by ``***@`` and every query value by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"<a URL that could not be read, {MASK}>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = "&".join(
        f"{name}={MASK}" if sep else name
        for name, sep, _ in (item.partition("=") for item in parts.query.split("&"))
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query if parts.query else "", ""))


def scrub(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url`."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


class RedactFilter(logging.Filter):
    """Rewrites a record's message and traceback with the URLs in them redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own handling
            return True
        scrubbed = scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            # Formatters use exc_text when it is set, so the traceback is scrubbed too.
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


_FILTER = RedactFilter()


def protect_loggers(prefixes: Iterable[str] = LOGGER_PREFIXES) -> None:
    """Add the filter (once) to every existing logger named by or under ``prefixes``."""
    wanted = tuple(prefixes)
    names = [
        name
        for name in list(logging.Logger.manager.loggerDict)
        if any(name == prefix or name.startswith(f"{prefix}.") for prefix in wanted)
    ]
    for name in {*wanted, *names}:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
