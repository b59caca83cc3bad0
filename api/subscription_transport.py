"""Subscriptions are served over the websocket only."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import ExecutionResult, GraphQLError
from starlette.websockets import WebSocket
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from domain.errors import BadInputError


class SubscriptionsOnWebsockets(SchemaExtension):
    """A subscription sent over plain HTTP is refused with BAD_USER_INPUT and never runs.

    Strawberry would execute it once, like a query, and that ends in INTERNAL. The refusal
    comes after validation, so a document that does not fit the schema still says so.
    """

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        over_http = not isinstance(context.context.request, WebSocket)
        if context.operation_type is OperationType.SUBSCRIPTION and over_http:
            refusal = BadInputError("Subscriptions are served over the websocket at /graphql.")
            # A result set before execution means Strawberry does not execute the operation.
            context.result = ExecutionResult(
                data=None, errors=[GraphQLError(str(refusal), original_error=refusal)]
            )
        yield
