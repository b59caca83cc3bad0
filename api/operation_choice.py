"""Which operation of a document runs: the one `operationName` names, or the only one.

GraphQL's GetOperation refuses a document of several operations when the request names
none; Strawberry would run the first. Refused here before anything runs, as a request
error coded BAD_REQUEST like an `operationName` the document does not hold.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from .graphql_over_http import BAD_REQUEST

NO_OPERATION_NAMED = "The document holds several operations; name the one to run in operationName."


class OperationChoice(SchemaExtension):
    """Refuses a document of several operations sent without `operationName`."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        # Strawberry keeps the name the request gave apart from the one it would choose.
        named = context._provided_operation_name is not None
        document = context.graphql_document
        if not context.pre_execution_errors and not named and document is not None:
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if len(operations) > 1:
                context.pre_execution_errors = [
                    GraphQLError(NO_OPERATION_NAMED, extensions={"code": BAD_REQUEST})
                ]
        yield
