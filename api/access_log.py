"""The access log without query strings, and one line per GraphQL operation.

A browser's or tool's `GET /graphql?query=...&variables=...` carries the whole
document and its variables — a diagnosis, a child's name — in the URL, and
uvicorn's access log writes URLs whole. Every access-log line keeps its path
and drops the query string, so no health data reaches the log that way; the one path that
names a child, `/fhir/Patient/ID/$everything`, is logged without the id. What a
GraphQL request did is logged instead by `api.metrics` on OPERATIONS_LOGGER:
who (organisation, UID, role) and the operation's root fields with their
outcome — never arguments, variables or answers.
"""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
OPERATIONS_LOGGER = "healthledger.operations"
WITHHELD = "?…"
CHILD_IN_PATH = re.compile(r"^(/fhir/Patient/)[^/?]+(/.*)?$")


class QueryStringsWithheld(logging.Filter):
    """Rewrites uvicorn's access-log records: `/graphql?query=...` becomes `/graphql?…`, and
    `/fhir/Patient/ID/$everything` becomes `/fhir/Patient/…/$everything`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's record: (client, method, path with query string, HTTP version, status).
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, found, _ = args[2].partition("?")
            logged = CHILD_IN_PATH.sub(r"\1…\2", path) + (WITHHELD if found else "")
            if logged != args[2]:
                record.args = (args[0], args[1], logged, args[3], args[4])
        return True


def configure_logging() -> None:
    """Withhold query strings from uvicorn's access log, and write healthledger's own
    informational lines (operations, websockets closed) beside uvicorn's; once per process."""
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, QueryStringsWithheld) for f in access.filters):
        access.addFilter(QueryStringsWithheld())
    ours = logging.getLogger("healthledger")
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)
        ours.propagate = False
