"""Hostile GraphQL documents over real mutual TLS, generated from schema.graphql for every role.

hypothesis-graphql writes valid queries and mutations and documents with one schema violation;
near-valid documents are generated ones broken on purpose (a dropped bracket, a cut-off end, a
wrong literal, an unknown field, an alias flood, deep nesting, huge numbers) or hand-written
shapes with drawn values. IDs and names are drawn partly from a seeded story, so documents reach
real children, agreements, admissions and reports. Every answer must be HTTP 200 JSON whose errors
carry documented codes (never INTERNAL), leak no stack trace, SQL, ledger key or other user, and
the server must answer a normal query afterwards.
"""

from __future__ import annotations

import functools
import json
import re
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphql
import hypothesis_graphql as hg
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes

from tests.api_client import (
    ALL_UIDS,
    CREATE_ADMISSION,
    CREATE_REPORT,
    Api,
    accepted_request,
    api_server,
    assert_nothing_leaks,
    register,
    sign_and_accept,
    update_card,
)
from tests.networks import make_network

SDL = (Path(__file__).parents[2] / "schema.graphql").read_text()
ROLES = ["alice", "dr-house", "school-a-office", "hospital-admin"]
VALID_EXAMPLES = 50  # per role, for queries and again for mutations
NEAR_VALID_EXAMPLES = 15  # per role: documents with one schema violation
BROKEN_EXAMPLES = 10  # per role: generated documents broken on purpose
HANDWRITTEN_EXAMPLES = 5  # per role: hand-written near-valid shapes with drawn values

# What a document that fits the schema may get: refusals, never a fault, an outage or a parse error.
ANSWER_CODES = {"FORBIDDEN", "NOT_FOUND", "CONFLICT", "BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"}
REJECTION_CODES = {"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"}
# Ledger state keys (chaincode/*.py), e.g. "guardian-child/alice/<id>": never shown to a client.
LEDGER_KEY = re.compile(r"\b(?:[a-z]+-)*(?:active|admission|agreement|card|child|report|request)/")
NAMES = [*ALL_UIDS, "school-a", "school-b", "hospital", "parents", "medical", "report"]
HOSTILE_TEXT = [
    "",
    " ",
    "' OR '1'='1",
    "Robert'); DROP TABLE children;--",
    "../../../../etc/passwd",
    "${jndi:ldap://127.0.0.1/a}",
    "<script>alert(1)</script>",
    "%s%s%s%n",
    "\u202eevil\u202c",
    "\x00",
    "x" * 5_000,
]
ANSWER_SECONDS = 2


@dataclass(frozen=True)
class Story:
    """A server with a little of the five-step story on it, and the ids it made."""

    api: Api
    ids: tuple[str, ...]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("hostile-input")
    net = make_network(root / "network")
    with api_server(net, f"sqlite:///{root}/ledger.db") as api:
        child = register(api)
        sign_and_accept(api, child)
        update_card(api, child, 1, healthGroup=1, allergies=["pollen"])
        request = accepted_request(api, child)
        api("dr-house").data(CREATE_REPORT, {"request": request, "conclusion": "Fit for school."})
        second = register(api, "alice", "Amy Pond")
        api("alice").data(CREATE_ADMISSION, {"child": second, "school": "school-b"})
        seen = api("alice").data(
            "{ children { edges { node { id } } } agreements { edges { node { id } } }"
            " admissionRequests { edges { node { id } } } reportRequests { edges { node { id } } }"
            " reports { edges { node { id } } } }"
        )
        ids = tuple(edge["node"]["id"] for found in seen.values() for edge in found["edges"])
        yield Story(api, ids)


def _scalars(ids: tuple[str, ...]) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    """Values for scalars: mostly the story's ids, and names, hostile text or random text."""
    text = st.one_of(st.sampled_from(NAMES), st.sampled_from(HOSTILE_TEXT), st.text(max_size=30))
    story_id = st.sampled_from(ids).map(nodes.String)
    return {
        "ID": st.one_of(  # one_of picks a branch evenly: three in five ids are the story's
            story_id,
            story_id,
            story_id,
            text.map(nodes.String),
            st.integers(-(2**31), 2**31 - 1).map(nodes.Int),
        ),
        "String": text.map(nodes.String),
        "Date": st.dates().map(lambda day: nodes.String(day.isoformat())),
        "DateTime": st.datetimes().map(lambda moment: nodes.String(moment.isoformat())),
    }


def _run(
    name: str, strategy: st.SearchStrategy[Any], examples: int, check: Callable[[Any], None]
) -> int:
    """Runs `check` on `examples` values, the same ones on every run of `name`; returns how many."""
    ran = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @seed(zlib.crc32(name.encode()))
    @given(strategy)
    def each(value: Any) -> None:
        nonlocal ran
        ran += 1
        check(value)

    each()
    return ran


def _answer(
    api: Api, uid: str, document: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """POSTs one document; returns the JSON body after the checks every answer must pass."""
    body: dict[str, Any] = {"query": document}
    if variables is not None:
        body["variables"] = variables
    # json.dumps escapes to ASCII, so any text (NUL, lone surrogates) arrives as generated.
    response = api(uid).http.post(
        "/graphql", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, (document, response.status_code, response.text[:500])
    assert_nothing_leaks(response.text)
    answer: dict[str, Any] = response.json()
    assert answer.keys() <= {"data", "errors", "extensions"} and answer.keys() & {"data", "errors"}
    sent = document + json.dumps(variables)
    for error in answer.get("errors") or []:
        message = error["message"]
        assert isinstance(message, str) and message.strip() and "\n" not in message, error
        key = LEDGER_KEY.search(message)
        assert key is None or key.group(0) in sent, f"a ledger key in {message!r}"
        named = [other for other in ALL_UIDS if other != uid and other in message]
        assert all(other in sent for other in named), f"{message!r} names {named}"
    return answer


def _codes(answer: dict[str, Any]) -> set[str]:
    return {error["extensions"]["code"] for error in answer.get("errors") or []}


def _still_answers(api: Api, uid: str) -> None:
    started = time.monotonic()
    assert api(uid).data("{ me { uid } }") == {"me": {"uid": uid}}
    assert time.monotonic() - started < ANSWER_SECONDS


@pytest.mark.parametrize("kind", ["queries", "mutations"])
@pytest.mark.parametrize("role", ROLES)
def test_generated_documents_get_documented_answers(story: Story, role: str, kind: str) -> None:
    documents = getattr(hg, kind)(SDL, custom_scalars=_scalars(story.ids))

    def check(document: str) -> None:
        codes = _codes(_answer(story.api, role, document))
        assert codes <= ANSWER_CODES, (document, codes)

    assert _run(f"{kind}/{role}", documents, VALID_EXAMPLES, check) >= VALID_EXAMPLES
    _still_answers(story.api, role)


def _rejected(api: Api, uid: str, document: str, variables: dict[str, Any] | None = None) -> None:
    """The document is refused before anything runs, with a rejection code."""
    answer = _answer(api, uid, document, variables)
    codes = _codes(answer)
    assert codes and codes <= REJECTION_CODES, (document, variables, answer)
    assert answer.get("data") is None, (document, answer)


@pytest.mark.parametrize("role", ROLES)
def test_documents_with_one_schema_violation_are_rejected(story: Story, role: str) -> None:
    violations = hg.from_schema(SDL, custom_scalars=_scalars(story.ids), mode=hg.Mode.NEGATIVE)
    reject = functools.partial(_rejected, story.api, role)
    ran = _run(f"violations/{role}", violations, NEAR_VALID_EXAMPLES, reject)
    assert ran >= NEAR_VALID_EXAMPLES
    _still_answers(story.api, role)


# -- near-valid documents ------------------------------------------------------------------------

Draw = Callable[[st.SearchStrategy[Any]], Any]
BRACKETS = {
    graphql.TokenKind.BRACE_L,
    graphql.TokenKind.BRACE_R,
    graphql.TokenKind.PAREN_L,
    graphql.TokenKind.PAREN_R,
    graphql.TokenKind.BRACKET_L,
    graphql.TokenKind.BRACKET_R,
}
STRINGS = {graphql.TokenKind.STRING, graphql.TokenKind.BLOCK_STRING}
NUMBERS = {graphql.TokenKind.INT, graphql.TokenKind.FLOAT}


def _tokens(document: str) -> list[graphql.Token]:
    lexer = graphql.language.Lexer(graphql.Source(document))
    found = []
    while (token := lexer.advance()).kind is not graphql.TokenKind.EOF:
        found.append(token)
    return found


def _replace(document: str, token: graphql.Token, text: str) -> str:
    return document[: token.start] + text + document[token.end :]


def _operation_brace(document: str) -> graphql.Token:
    return next(t for t in _tokens(document) if t.kind is graphql.TokenKind.BRACE_L)


def _drop_bracket(document: str, draw: Draw) -> str:
    token = draw(st.sampled_from([t for t in _tokens(document) if t.kind in BRACKETS]))
    return _replace(document, token, "")


def _cut_off(document: str, draw: Draw) -> str:
    return document[: draw(st.integers(1, document.rindex("}")))]


def _unknown_field(document: str, draw: Draw) -> str:
    braces = [t for t in _tokens(document) if t.kind is graphql.TokenKind.BRACE_L]
    return _replace(document, draw(st.sampled_from(braces)), "{ notInTheSchema ")


def _wrong_literal(document: str, draw: Draw) -> str:
    """A boolean or an unknown enum where a string, ID or date stands; or a number too big."""
    tokens = [t for t in _tokens(document) if t.kind in STRINGS | NUMBERS]
    if not tokens:
        return _unknown_field(document, draw)
    token = draw(st.sampled_from(tokens))
    if token.kind in NUMBERS:  # no Int, ID or Float takes it (a Float would be infinite)
        return _replace(document, token, "1e999" if token.kind is graphql.TokenKind.INT else "1e9x")
    return _replace(document, token, draw(st.sampled_from(["true", "NOT_A_VALUE", "[[]]"])))


def _alias_flood(document: str, draw: Draw) -> str:
    """More aliases than the limit allows, each one valid on its own."""
    aliases = " ".join(f"a{n}: __typename" for n in range(draw(st.integers(31, 100))))
    return _replace(document, _operation_brace(document), "{ " + aliases + " ")


def _deep_nesting(document: str, draw: Draw) -> str:
    """Introspection nested deeper than graphql-core allows (the depth limit skips it), or
    deeper than the parser or the token limit allows."""
    depth = draw(st.one_of(st.integers(4, 40), st.integers(41, 3_000)))
    nested = "__schema { types { " + "fields { type { " * depth + "name" + " }" * (2 * depth + 2)
    return _replace(document, _operation_brace(document), "{ " + nested + " ")


BREAKS = [_drop_bracket, _cut_off, _unknown_field, _wrong_literal, _alias_flood, _deep_nesting]


@st.composite
def _broken(draw: Draw, documents: st.SearchStrategy[str]) -> str:
    document = draw(documents)
    return str(draw(st.sampled_from(BREAKS))(document, draw))


HUGE = st.one_of(st.integers(2**31, 10**400), st.integers(-(10**400), -(2**31) - 1))
FRACTIONS = st.floats(allow_nan=False).filter(lambda number: not number.is_integer())
NOT_AN_INT = st.one_of(HUGE, FRACTIONS, st.text(max_size=5), st.booleans(), st.lists(st.integers()))
NOT_AN_ID = st.one_of(FRACTIONS, st.booleans(), st.lists(st.integers()), st.just({"id": 1}))
PAGE = 'query($n: Int!) { blocks(channel: "medical", first: $n) { edges { cursor } } }'
CARD = """mutation($child: ID!, $version: Int!) {
  updateMedicalCard(childId: $child, expectedVersion: $version, patch: {notes: "n"}) { version }
}"""
MALFORMED = [
    "fragment A on Query { ...B } fragment B on Query { ...A } { ...A }",
    "{ __schema { types {" + " fields { type {" * 4 + " name" + " }" * 10 + " }",
    "query($x: Int) { me { uid } }",
    "{ child(id: $undefined) { id } }",
    "{ me { uid @nope } }",
    '{ me { uid @skip(if: "yes") } }',
    "{ me { uid } } { me { uid } }",
    "query A { me { uid } } query A { me { uid } }",
    "{ me }",
    "{ me { uid { deeper } } }",
    "subscription { events(channel: 1) { name } }",
    "{ __type(name: 5) { name } }",
    '{ me { uid } "unterminated',
]
# Hand-written near-valid requests: variables of the wrong type, huge literals, limits, bad shape.
NEAR_VALID_REQUESTS = st.one_of(
    NOT_AN_INT.map(lambda n: (PAGE, {"n": n})),
    NOT_AN_ID.map(lambda child: (CARD, {"child": child, "version": 1})),
    NOT_AN_INT.map(lambda version: (CARD, {"child": "c", "version": version})),
    st.sampled_from([None, {}, {"child": None, "version": None}]).map(lambda v: (CARD, v)),
    HUGE.map(
        lambda n: (f'{{ blocks(channel: "medical", first: {n}) {{ edges {{ cursor }} }} }}', None)
    ),
    st.integers(501, 700).map(lambda n: ("{" + " me { uid }" * n + " }", None)),
)


@pytest.mark.parametrize("role", ROLES)
def test_near_valid_documents_are_rejected_before_anything_runs(story: Story, role: str) -> None:
    broken = _broken(hg.from_schema(SDL, custom_scalars=_scalars(story.ids)))
    reject = functools.partial(_rejected, story.api, role)
    assert _run(f"broken/{role}", broken, BROKEN_EXAMPLES, reject) >= BROKEN_EXAMPLES
    ran = _run(
        f"near-valid/{role}", NEAR_VALID_REQUESTS, HANDWRITTEN_EXAMPLES, lambda r: reject(*r)
    )
    assert ran >= HANDWRITTEN_EXAMPLES
    _still_answers(story.api, role)


@pytest.mark.parametrize("document", MALFORMED)
def test_each_malformed_document_is_rejected_for_every_role(story: Story, document: str) -> None:
    for role in ROLES:
        _rejected(story.api, role, document)
