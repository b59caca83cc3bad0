"""Parsing each GraphQL document text once: later requests sending it reuse the parsed tree."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import DocumentNode
from strawberry.extensions import SchemaExtension

from .document_cache import DocumentCache


class CachedParsing(SchemaExtension):
    """Parsed documents kept by text in `documents`, filled by Strawberry's own parse.

    A document not kept yet is parsed once, by Strawberry inside the operation, where a
    syntax error (or the token limit) gets its `extensions.code` from ErrorCodes. Strawberry's
    ParserCache parses while the parsing hook is entered: such an error would escape without
    a code, and parsing again inside the operation would double what a refusal costs.
    """

    def __init__(self, documents: DocumentCache[DocumentNode]) -> None:
        super().__init__()
        self.documents = documents

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        cached = self.documents.get(context.query) if context.query else None
        if cached is not None:
            context.graphql_document = cached
        yield
        if cached is None and context.query and context.graphql_document is not None:
            self.documents.offer(context.query, context.graphql_document)
        for error in context.pre_execution_errors or ():
            # A syntax error's traceback holds the parser, every token read, and the frame
            # holding the error: a cycle only a full garbage collection would free.
            error.__traceback__ = None
