"""The access log without query strings.

A browser's or tool's `GET /graphql?query=...&variables=...` carries the whole
document and its variables — a diagnosis, a child's name — in the URL, and
uvicorn's access log writes URLs whole. Every access-log line keeps its path
and drops the query string, so no health data reaches the log that way.
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"
WITHHELD = "?…"


class QueryStringsWithheld(logging.Filter):
    """Rewrites uvicorn's access-log records: `/graphql?query=...` becomes `/graphql?…`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's record: (client, method, path with query string, HTTP version, status).
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, found, _ = args[2].partition("?")
            if found:
                record.args = (args[0], args[1], path + WITHHELD, args[3], args[4])
        return True


def withhold_query_strings() -> None:
    """Install the filter on uvicorn's access logger (once per process)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, QueryStringsWithheld) for f in logger.filters):
        logger.addFilter(QueryStringsWithheld())
