"""Persisted operations: GraphQL documents a client names by the SHA-256 of their text.

A request may carry `extensions.persistedQuery = {"version": 1, "sha256Hash": H}` (Apollo's
automatic persisted queries). Without `query`, the server runs the text it knows by H, or
answers PERSISTED_QUERY_NOT_FOUND (message "PersistedQueryNotFound") so that the client sends
the text with H once more. With `query`, sha256(query) must equal H (else BAD_USER_INPUT).

The operations registered at start come from a manifest, `{hash: text}`, which the web app's
build writes (web/dist/persisted-documents.json). Two modes:

- automatic (the default): any text runs, as without the extension; a text sent with its
  hash is remembered, per process, once it has passed validation, in a store bounded in
  operations and in bytes (least recently used first out), so no client can fill memory.
- registered only (`serve --persisted-only`): only the manifest's operations run, sent by
  hash or as their exact text; any other text gets FORBIDDEN and an unknown hash
  PERSISTED_QUERY_NOT_FOUND. Nothing is remembered.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from graphql import GraphQLError, GraphQLSchema, parse, validate
from strawberry.types import ExecutionResult

from domain.errors import BadInputError, ForbiddenError, RefusalError

from .web import WEB_DIST

APQ_VERSION = 1
DEFAULT_MANIFEST = WEB_DIST / "persisted-documents.json"
MAX_REMEMBERED_OPERATIONS = 1000
MAX_REMEMBERED_BYTES = 4 * 1024 * 1024
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# The HTTP status of each refusal, as Apollo's router answers them.
REFUSAL_STATUS = {"PERSISTED_QUERY_NOT_FOUND": 404, "FORBIDDEN": 403, "BAD_USER_INPUT": 400}


class PersistedQueryNotFoundError(RefusalError):
    """The hash names no operation this server knows; the client may send the text with it."""

    code = "PERSISTED_QUERY_NOT_FOUND"

    def __init__(self) -> None:
        # Apollo's clients (and urql's persistedExchange) recognise this exact message.
        super().__init__("PersistedQueryNotFound")


class UnregisteredOperationError(ForbiddenError):
    """A document that is not among the operations this server was started with."""

    def __init__(self) -> None:
        super().__init__(
            "This server runs only the operations registered with it at start; send one of "
            "those by its extensions.persistedQuery.sha256Hash."
        )


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and what is wrong."""


def sha256_hex(text: str) -> str:
    """The APQ hash of a document: SHA-256 over its UTF-8 bytes, in lowercase hex."""
    # surrogatepass: a lone surrogate (valid in JSON) hashes to something no client sends.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Resolved:
    """The document text to run, and the hash to remember it by once it has validated."""

    query: str | None
    remember: str | None = None


class RememberedOperations:
    """Texts by hash: at most `max_operations` of them and `max_bytes` of UTF-8 in all.

    The least recently used leave first; a text larger than `max_bytes` is not kept.
    """

    def __init__(
        self,
        max_operations: int = MAX_REMEMBERED_OPERATIONS,
        max_bytes: int = MAX_REMEMBERED_BYTES,
    ) -> None:
        self.max_operations = max_operations
        self.max_bytes = max_bytes
        self.bytes = 0
        self._texts: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._texts)

    def get(self, sha256: str) -> str | None:
        text = self._texts.get(sha256)
        if text is not None:
            self._texts.move_to_end(sha256)
        return text

    def put(self, sha256: str, text: str) -> None:
        size = _size(text)
        if sha256 in self._texts or size > self.max_bytes:
            return
        self._texts[sha256] = text
        self.bytes += size
        while len(self._texts) > self.max_operations or self.bytes > self.max_bytes:
            _, evicted = self._texts.popitem(last=False)
            self.bytes -= _size(evicted)


class PersistedOperations:
    """Which document a request runs, by the rules in this module's docstring.

    `registered` is the manifest (hash -> text); `registered_only` is `--persisted-only`.
    """

    def __init__(
        self,
        registered: Mapping[str, str] | None = None,
        *,
        registered_only: bool = False,
        remembered: RememberedOperations | None = None,
    ) -> None:
        self.registered = dict(registered or {})
        self.registered_only = registered_only
        self.remembered = remembered if remembered is not None else RememberedOperations()

    @classmethod
    def from_manifest(
        cls, path: Path | None, *, registered_only: bool, schema: GraphQLSchema
    ) -> PersistedOperations:
        """The manifest at `path` (None: the web app's, if built) and the mode.

        In registered-only mode every operation of the manifest must also fit `schema`: a
        manifest from a web app built for another schema would refuse everything it sends.
        Raises ManifestError if the manifest is missing when it is needed (a path given, or
        registered-only mode) or is not usable.
        """
        if path is None and (registered_only or DEFAULT_MANIFEST.is_file()):
            path = DEFAULT_MANIFEST
        if path is None:
            return cls(registered_only=registered_only)
        registered = load_manifest(path, schema if registered_only else None)
        return cls(registered, registered_only=registered_only)

    def resolve(self, query: str | None, extensions: Mapping[str, object] | None) -> Resolved:
        """The document a request with this `query` and these `extensions` runs.

        Raises BadInputError (malformed extension, hash not of the text),
        PersistedQueryNotFoundError or UnregisteredOperationError.
        """
        persisted = (extensions or {}).get("persistedQuery")
        if persisted is None:
            if query and self.registered_only and sha256_hex(query) not in self.registered:
                raise UnregisteredOperationError
            return Resolved(query)
        wanted = _requested_hash(persisted)
        if not query:  # no text, or the empty one a graphql-ws client must send: by hash
            known = self.registered.get(wanted)
            if known is None and not self.registered_only:
                known = self.remembered.get(wanted)
            if known is None:
                raise PersistedQueryNotFoundError
            return Resolved(known)
        if sha256_hex(query) != wanted:
            raise BadInputError("provided sha does not match query")
        if wanted in self.registered:
            return Resolved(query)
        if self.registered_only:
            raise UnregisteredOperationError
        return Resolved(query, remember=wanted)

    def remember(self, resolved: Resolved, result: ExecutionResult) -> None:
        """Keep a text sent with its hash if its request got past validation.

        A request error (no data, and an error of no field: a parse, validation, cost or
        variable error) means the text did not get that far and is not kept.
        """
        if resolved.remember is None or resolved.query is None:
            return
        if result.data is None and any(error.path is None for error in result.errors or ()):
            return
        self.remembered.put(resolved.remember, resolved.query)


def load_manifest(path: Path, schema: GraphQLSchema | None = None) -> dict[str, str]:
    """A manifest `{sha256 hex: document text}` whose every entry is its text's hash (and,
    given a schema, whose every document is valid against it)."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(
            f"{path} does not exist: build the web app (make web/dist/index.html) or give "
            "--persisted-operations FILE."
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"{path} is not a JSON manifest of operations ({exc}).") from None
    if not isinstance(loaded, dict) or not loaded:
        raise ManifestError(f"{path} must be a JSON object of sha256 hash -> document text.")
    manifest: dict[str, str] = {}
    for sha256, text in loaded.items():
        if not isinstance(text, str) or sha256 != sha256_hex(text):
            raise ManifestError(f"{path}: the entry {sha256[:16]}... is not its text's sha256.")
        if schema is not None and (errors := _validation_errors(schema, text)):
            raise ManifestError(
                f"{path}: the operation {sha256[:16]}... does not fit this server's schema "
                f"({errors[0].message}); rebuild the web app against schema.graphql."
            )
        manifest[sha256] = text
    return manifest


def _validation_errors(schema: GraphQLSchema, text: str) -> list[GraphQLError]:
    try:
        return validate(schema, parse(text))
    except GraphQLError as syntax:
        return [syntax]


def _requested_hash(persisted: object) -> str:
    if not isinstance(persisted, dict):
        raise BadInputError(
            "extensions.persistedQuery must be an object with version and sha256Hash."
        )
    version = persisted.get("version")
    if isinstance(version, bool) or version != APQ_VERSION:  # JSON true would equal 1
        raise BadInputError(f"Only version {APQ_VERSION} of persisted queries is supported.")
    wanted = persisted.get("sha256Hash")
    if not isinstance(wanted, str) or not _SHA256_HEX.fullmatch(wanted):
        raise BadInputError(
            "extensions.persistedQuery.sha256Hash must be 64 lowercase hexadecimal digits."
        )
    return wanted


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))
