"""Every GraphQL error leaves with `extensions.code` (listed in docs/graphql.md); faults masked.

A refusal from the contracts, the gateway or the identity layer carries its own
code. GraphQL parse and validation failures, limits included, get the GraphQL
codes. Anything unexpected is logged with its traceback under a request id and
reaches the client as a generic sentence with code INTERNAL and that id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension

from domain.errors import RefusalError
from ledger_backends import BackendUnavailableError, LedgerDamagedError, ReadConflictError
from ledger_backends.proofs import TreeNotAvailableError
from ledger_backends.verify_disk import ScratchSpaceError

log = logging.getLogger("healthledger.api")

LEDGER_CODES: dict[type[Exception], str] = {
    BackendUnavailableError: "UNAVAILABLE",
    ReadConflictError: "CONFLICT",
    LedgerDamagedError: "UNAVAILABLE",
    TreeNotAvailableError: "UNAVAILABLE",  # a ledger older than trees, until its next block
    ScratchSpaceError: "UNAVAILABLE",  # verify's temporary database could not be made
}
CHECK_NOT_RUN = (
    "The server could not check the chain right now: it has no room for the check's "
    "temporary file. This says nothing about the chain; try again later."
)


def error_code(error: GraphQLError) -> str:
    """The API code for one GraphQL error."""
    given = (error.extensions or {}).get("code")
    if isinstance(given, str):
        return given
    original = error.original_error
    if original is None:
        if isinstance(error, GraphQLSyntaxError) and "tokens" not in error.message:
            return "GRAPHQL_PARSE_FAILED"
        return "GRAPHQL_VALIDATION_FAILED"
    # Only our own refusals name their code: other libraries' exceptions have a `code` too
    # (SQLAlchemy's is "dbapi"), and trusting it would send their message, SQL included.
    if isinstance(original, RefusalError):
        return original.code
    for kind, ledger_code in LEDGER_CODES.items():
        if isinstance(original, kind):
            return ledger_code
    if error.path is None and isinstance(original, ValueError | TypeError | GraphQLError):
        # A variable that does not coerce to its type (e.g. a bad Date): graphql-core wraps the
        # coercion's GraphQLError (Strawberry's StrawberryInputCoercionError for scalars).
        return "BAD_USER_INPUT"
    return "INTERNAL"


class ErrorCodes(SchemaExtension):
    """Adds `extensions.code` to every error and masks unexpected ones."""

    _streamed = False

    def on_operation(self) -> Iterator[None]:
        yield
        if not self._streamed:  # streamed results were coded one by one as they left
            _code_errors(self.execution_context.result)

    def on_stream_result(self, result: object) -> Iterator[None]:
        """Each result sent over a websocket (subscriptions), before it is sent."""
        self._streamed = True
        _code_errors(result)
        yield


def _code_errors(result: object) -> None:
    errors = getattr(result, "errors", None)
    if result is not None and errors:
        result.errors = [with_code(error) for error in errors]  # type: ignore[attr-defined]


def log_error(error: GraphQLError) -> None:
    """One line per refusal or outage; unexpected faults are logged by `with_code` instead.

    Refusals are the contract at work and an outage is one fault that many requests meet,
    so neither gets a traceback: the log stays readable while a ledger is down.
    """
    code = error_code(error)
    if code == "UNAVAILABLE":
        log.warning("UNAVAILABLE: %s", error.original_error or error.message)
    elif code != "INTERNAL":
        log.debug("%s: %s", code, error.message)


def with_code(error: GraphQLError) -> GraphQLError:
    """The error as the client sees it: its code, and a masked message for faults."""
    code = error_code(error)
    message = error.message
    extensions = {**(error.extensions or {}), "code": code}
    if code == "INTERNAL":
        request_id = uuid.uuid4().hex[:12]
        log.error("Unexpected error (request id %s)", request_id, exc_info=error.original_error)
        message = (
            f"An unexpected error occurred; the server log has details (request id {request_id})."
        )
        extensions = {"code": code, "requestId": request_id}
    # A damaged chain is no passing outage: its own message says where, and that retrying
    # fails; a tree that cannot answer (a ledger older than trees, a version older than
    # commitments) says why, naming nothing the caller may not know.
    elif isinstance(error.original_error, ScratchSpaceError):
        log.error("A chain check could not run: %s", error.original_error)
        message = CHECK_NOT_RUN
    elif code == "UNAVAILABLE" and not isinstance(
        error.original_error, LedgerDamagedError | TreeNotAvailableError
    ):
        message = _unavailable_message(error.original_error)
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions=extensions,
    )


def _unavailable_message(cause: Exception | None) -> str:
    if isinstance(cause, BackendUnavailableError) and not cause.outcome_known:
        # The store went away between sending a block and reading it back.
        return (
            "The ledger stopped answering while your change was being stored; it is either "
            "wholly stored or not at all. Read it back before trying again."
        )
    return "The ledger is unavailable right now; nothing was written. Try again shortly."
