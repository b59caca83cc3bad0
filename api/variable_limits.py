"""Variables are bounded before graphql-core coerces them.

A request body may hold 1 MiB of JSON: a list of 340,000 numbers as a variable
cost about 0.37 s of event-loop time to coerce, though every contract refuses a
list of more than 200 entries. So before an operation executes, its variables
are walked once, and refused with BAD_USER_INPUT if any list is longer than
MAX_LIST_ITEMS or all of them together hold more than MAX_VALUES values. Each
argument's own maximum (docs/graphql.md, "Limits") is checked by the contracts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension

from domain.errors import BadInputError

# The longest list any argument takes: a card's vaccinations or examinations.
MAX_LIST_ITEMS = 200
# Every value of every variable, containers included: a full card patch is about 2,000.
MAX_VALUES = 5_000


def variables_refusal(variables: Any) -> str | None:
    """Why these variables are refused before coercion, or None if they are within bounds."""
    pending = [variables]
    seen = 0
    while pending:
        value = pending.pop()
        seen += 1
        if seen > MAX_VALUES:
            return f"The variables hold more than {MAX_VALUES} values in all."
        if isinstance(value, list):
            if len(value) > MAX_LIST_ITEMS:
                return f"A list in the variables holds more than {MAX_LIST_ITEMS} entries."
            pending.extend(value)
        elif isinstance(value, dict):
            pending.extend(value.values())
    return None


class BoundedVariables(SchemaExtension):
    """Refuses an operation whose variables are out of bounds; it never executes."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        refusal = variables_refusal(context.variables or {})
        if refusal is not None:
            # A result set before execution means Strawberry does not execute the operation.
            context.result = ExecutionResult(
                data=None, errors=[GraphQLError(refusal, original_error=BadInputError(refusal))]
            )
        yield
