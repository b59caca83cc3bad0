"""How large a GraphQL document may be: tokens when parsed, depth and aliases when validated."""

from __future__ import annotations

from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, QueryDepthLimiter

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 500

# Strawberry's limiters build a new rule class per instance: made once here, not per request.
_LIMIT_RULES = [
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
]


class QueryLimits(AddValidationRules):
    """The depth and alias limits, with rule classes shared by every request."""

    def __init__(self) -> None:
        super().__init__(_LIMIT_RULES)
