"""What a GraphQL document costs to validate, bounded before graphql-core validates it.

graphql-core checks a document rule by rule in one walk, except that
OverlappingFieldsCanBeMergedRule compares every pair of fields sharing a response name,
fragments expanded, and then their sub-selections pair by pair: 390 copies of
`me { uid }` (4 KB, no aliases) took a second to validate, and ten fragments each
spreading the one before ten times stand for a billion fields. Three bounds keep that
work small, all read from the parsed document in time linear in its size:

- `MAX_SELECTIONS` (500): selections (fields, fragment spreads, inline fragments), each
  spread counting once more for every selection of its fragment (each fragment is
  counted once and its count reused) and duplicates as often as they appear, summed
  over the document's operations and over any fragment that nothing spreads.
- `MAX_SAME_PLACE` (5): fields landing at one place in the answer, such as every `me`
  of a selection set, or every `uid` under all of those `me`, fragments included: the
  fields the overlap rule compares pairwise.
- `MAX_NESTING` (30): levels of nested selection sets, a fragment's counting as one more
  level where it is spread. Validation's depth limit leaves out introspection, where
  160 nested `ofType` cost 12 ms a request.

A document beyond a bound is refused with BAD_USER_INPUT before it is validated; a cycle
of fragment spreads is refused as validation would refuse it. The standard introspection
query makes 230 selections nested 18 deep; the web app's largest operation makes 28.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import NamedTuple

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from domain.errors import BadInputError

from .document_cache import DocumentCache

MAX_SELECTIONS = 500
MAX_SAME_PLACE = 5
MAX_NESTING = 30


def cost_refusal(document: DocumentNode) -> GraphQLError | None:
    """Why the document may not be validated, or None when it is within every bound."""
    outline = _Outline(document)
    try:
        extent = outline.extent()
    except _FragmentCycleError as cycle:
        return GraphQLError(f"Cannot spread fragment '{cycle.name}' within itself.")
    if extent.selections > MAX_SELECTIONS:
        return _refusal(
            f"This document makes more than {MAX_SELECTIONS} selections, counting each "
            "fragment wherever it is spread; ask for fewer fields or split the request."
        )
    if extent.depth > MAX_NESTING:
        return _refusal(
            f"This document nests selections {extent.depth} levels deep, fragments "
            f"included; at most {MAX_NESTING} levels are allowed."
        )
    crowded = outline.crowded_place()
    if crowded is None:
        return None
    place, count = crowded
    return _refusal(
        f"This document selects '{place}' {count} times, fragments included; at most "
        f"{MAX_SAME_PLACE} selections may share a place in the answer. Select it once."
    )


def selection_count(document: DocumentNode) -> int:
    """The number MAX_SELECTIONS bounds (counted up to one past it); ValueError on a cycle."""
    try:
        return _Outline(document).extent().selections
    except _FragmentCycleError as cycle:
        raise ValueError(f"Fragment '{cycle.name}' spreads itself.") from None


class CostCheckedValidation(SchemaExtension):
    """Validation of documents within the cost bounds, refusal of the others; by document text.

    Outcomes are kept in `outcomes`, one DocumentCache per schema. Strawberry's
    ValidationCache keys on the parsed document itself, whose hash and equality walk the
    whole tree on every request: two deep documents differing only in a comment made the
    comparison exceed Python's recursion limit. Strawberry validates only when no
    extension did (`pre_execution_errors` left None), so validation happens here, after
    the cost check.
    """

    def __init__(self, outcomes: DocumentCache[list[GraphQLError]]) -> None:
        super().__init__()
        self.outcomes = outcomes

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document, text = context.graphql_document, context.query
        assert document is not None and text  # parsed from text, as over HTTP
        errors = self.outcomes.get(text)
        if errors is None:
            refusal = cost_refusal(document)
            if refusal is None:
                errors = validate_document(
                    context.schema._schema, document, context.validation_rules
                )
            else:
                errors = [refusal]
            self.outcomes.offer(text, errors)
        context.pre_execution_errors = errors
        yield


def _refusal(message: str) -> GraphQLError:
    return GraphQLError(message, original_error=BadInputError(message))


class _FragmentCycleError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Extent(NamedTuple):
    selections: int  # counted up to MAX_SELECTIONS + 1
    depth: int


class _Outline:
    """A document's operations and fragments, and the extent of each fragment.

    Recursion follows the document's nesting and its chains of spreads: graphql-core's
    parser stops at 200 levels of nesting, and the token limit keeps chains short.
    """

    def __init__(self, document: DocumentNode) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.operations = [
            d for d in document.definitions if isinstance(d, OperationDefinitionNode)
        ]
        self._extents: dict[str, _Extent] = {}
        self._expanding: set[str] = set()
        self._spread: set[str] = set()

    def extent(self) -> _Extent:
        """Selections of every operation and every fragment nothing spreads, and the deepest.

        Spreads are expanded. Raises _FragmentCycleError if a fragment spreads itself, directly
        or not. Counts stop growing just past MAX_SELECTIONS, so a fragment bomb stays a
        small number.
        """
        operations = [self._extent(operation.selection_set) for operation in self.operations]
        for name in self.fragments:  # every one, so that a cycle anywhere is found
            self._fragment_extent(name)
        roots = operations + [self._extents[name] for name in self._unspread_fragments()]
        return _Extent(
            sum(root.selections for root in roots), max((root.depth for root in roots), default=0)
        )

    def crowded_place(self) -> tuple[str, int] | None:
        """A place in the answer selected more than MAX_SAME_PLACE times, and how often.

        Walks the document with its fragments expanded, level by level, gathering at each
        place the fields with one response name under the same parent place. Call it once
        `extent()` is within MAX_SELECTIONS: the walk visits each counted selection once.
        """
        roots = [operation.selection_set for operation in self.operations]
        roots += [self.fragments[name].selection_set for name in self._unspread_fragments()]
        places = deque(("", [root]) for root in roots)
        while places:
            parent, selection_sets = places.popleft()
            by_name: dict[str, list[FieldNode]] = {}
            opened = (
                field
                for selection_set in selection_sets
                for field in opened_fields(selection_set, self.fragments)
            )
            for field in opened:
                name = field.alias.value if field.alias else field.name.value
                by_name.setdefault(name, []).append(field)
            for name, fields in by_name.items():
                place = f"{parent}.{name}" if parent else name
                if len(fields) > MAX_SAME_PLACE:
                    return place, len(fields)
                below = [field.selection_set for field in fields if field.selection_set]
                if below:
                    places.append((place, below))
        return None

    def _unspread_fragments(self) -> list[str]:
        return [name for name in self.fragments if name not in self._spread]

    def _extent(self, selection_set: SelectionSetNode) -> _Extent:
        selections, depth = len(selection_set.selections), 1
        for selection in selection_set.selections:
            if isinstance(selection, FragmentSpreadNode):
                self._spread.add(selection.name.value)
                below = self._fragment_extent(selection.name.value)
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                below = self._extent(selection.selection_set)
            else:
                continue
            selections += below.selections
            depth = max(depth, 1 + below.depth)
        return _Extent(min(selections, MAX_SELECTIONS + 1), depth)

    def _fragment_extent(self, name: str) -> _Extent:
        if name in self._extents:
            return self._extents[name]
        if name in self._expanding:
            raise _FragmentCycleError(name)
        definition = self.fragments.get(name)
        if definition is None:
            return _Extent(0, 0)  # an unknown fragment: validation refuses it
        self._expanding.add(name)
        self._extents[name] = self._extent(definition.selection_set)
        self._expanding.discard(name)
        return self._extents[name]


def opened_fields(
    selection_set: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    opened: set[str] | None = None,
) -> Iterator[FieldNode]:
    """The fields of a selection set, with inline fragments and fragment spreads opened.

    Each spread is opened wherever it stands; with `opened`, a named fragment is opened
    once only (recording it there), which guards against cycles in a document that has
    not been validated. An unknown fragment opens to nothing.
    """
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from opened_fields(selection.selection_set, fragments, opened)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in fragments or (opened is not None and name in opened):
                continue
            if opened is not None:
                opened.add(name)
            yield from opened_fields(fragments[name].selection_set, fragments, opened)
