"""GraphQL over HTTP as the GraphQL-over-HTTP draft's server section reads: the media type
of each answer and its status.

An answer is `application/graphql-response+json` when the Accept header prefers it (or
lists it next to `application/json` at the same quality), and `application/json` when
Accept prefers that, allows any type (`*/*`, `application/*`) or is absent; an Accept
that allows neither gets 406. A POST body must be `application/json` in UTF-8, else 415.

- `application/graphql-response+json`: an executed operation answers 200, field errors or
  not (a partial response is a success); a request error (the document does not parse or
  validate, is over a cost bound, its variables do not coerce or are over their bounds:
  400; a fault before execution: 500) has no `data` entry.
- `application/json`: the answer to a well-formed request is 200, with `data` null on a
  request error, as GraphQL servers have always answered it.

A request the HTTP layer refuses gets the same status in both media types, and a body that
is a GraphQL response of one error coded BAD_REQUEST (or the refuser's own code, as the
identity gate's UNAUTHENTICATED): a body that is not JSON (400), not a well-formed request
(no `query`, parameters of the wrong type, a batch) or naming no operation of its document
(400), a mutation over GET (405, `Allow: POST`), a method other than GET and POST (405,
`Allow: GET, POST`). As `application/json`, such a body also holds `data: null`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cross_web import HTTPException
from starlette.responses import Response
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.exceptions import InvalidOperationTypeError

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"
BAD_REQUEST = "BAD_REQUEST"
# A request error's status by its code: 400 for every refusal of the request, 500 for a fault.
REQUEST_ERROR_STATUS = {"INTERNAL": 500}
# Optional GET parameters, which the empty string leaves out.
OPTIONAL_PARAMETERS = ("operationName", "variables", "extensions")
_QUALITY = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")


class RequestRefusedError(HTTPException):
    """A request refused by the HTTP layer, answered as a GraphQL response of one error."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = BAD_REQUEST,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, message)
        self.code = code
        self.headers = dict(headers or {})


def negotiated_media_type(accept: str | None) -> str | None:
    """The media type an answer takes under this Accept header; None when it allows neither.

    The better quality wins. At equal quality a type named outright beats one a wildcard
    covers; named both, `application/graphql-response+json` wins; covered by a wildcard
    both, `application/json` does, which is what a client that names neither expects.
    """
    if accept is None or not accept.strip():
        return APPLICATION_JSON
    ranges = _media_ranges(accept)
    offers = []
    for media_type in (GRAPHQL_RESPONSE_JSON, APPLICATION_JSON):
        quality, specificity = _acceptance(media_type, ranges)
        preferred = media_type == (GRAPHQL_RESPONSE_JSON if specificity == 2 else APPLICATION_JSON)
        offers.append(((quality, specificity, preferred), media_type))
    (quality, _, _), best = max(offers)
    return best if quality > 0 else None


def answer_media_type(accept: str | None) -> str:
    """The negotiated media type, or `application/json` when Accept allows neither."""
    return negotiated_media_type(accept) or APPLICATION_JSON


def check_media_types(method: str, headers: Mapping[str, str]) -> None:
    """Raises RequestRefusedError when no answer can be acceptable (406) or a POST body is
    not JSON in UTF-8 (415)."""
    if negotiated_media_type(headers.get("accept")) is None:
        answers = f"{GRAPHQL_RESPONSE_JSON} or {APPLICATION_JSON}"
        raise RequestRefusedError(406, f"This endpoint answers {answers}; Accept allows neither.")
    if method == "POST" and not _is_utf8_json(headers.get("content-type")):
        raise RequestRefusedError(415, f"A POST here has Content-Type: {APPLICATION_JSON} (UTF-8).")


def without_empty_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    """GET parameters with each optional one given as the empty string left out."""
    return {
        name: value
        for name, value in params.items()
        if not (name in OPTIONAL_PARAMETERS and value == "")
    }


@dataclass(frozen=True)
class Answer:
    """The status, body and media type of one answer."""

    status: int
    body: Mapping[str, object]
    media_type: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        if self.media_type == APPLICATION_JSON:
            return APPLICATION_JSON  # what the API has always said; JSON is UTF-8 by definition
        return f"{self.media_type}; charset=utf-8"

    def response(self) -> Response:
        return Response(
            json.dumps(self.body, separators=(",", ":")),
            status_code=self.status,
            headers={**self.headers, "content-type": self.content_type},
        )


def graphql_answer(
    result: GraphQLHTTPResponse | Sequence[GraphQLHTTPResponse], media_type: str
) -> Answer:
    """The answer carrying a GraphQL response that Strawberry made.

    A request error is a response without data whose errors have no path (a field error
    always has one), as the GraphQL specification tells them apart.
    """
    assert not isinstance(result, Sequence), "batching is off"
    errors = result.get("errors") or []
    if media_type == APPLICATION_JSON:
        return Answer(200, result, APPLICATION_JSON)
    if result.get("data") is None and errors and not any(_has_path(e) for e in errors):
        body = {name: value for name, value in result.items() if name != "data"}
        return Answer(_request_error_status(errors), body, media_type)
    return Answer(200, result, media_type)


def refusal_answer(refusal: HTTPException, accept: str | None) -> Answer:
    """The answer to a request refused before it could run, in the negotiated media type.

    Strawberry's own refusals (HTTPException with status 400 or 405) get the statuses of the
    module docstring; `application/json` bodies keep a null `data`, as they always had.
    """
    refused = refusal if isinstance(refusal, RequestRefusedError) else _strawberry_refusal(refusal)
    media_type = answer_media_type(accept)
    error = {"message": refused.reason, "extensions": {"code": refused.code}}
    body = (
        {"data": None, "errors": [error]} if media_type == APPLICATION_JSON else {"errors": [error]}
    )
    return Answer(refused.status_code, body, media_type, refused.headers)


def _strawberry_refusal(refusal: HTTPException) -> RequestRefusedError:
    cause = refusal.__cause__
    if refusal.status_code == 405:
        return RequestRefusedError(405, refusal.reason, headers={"Allow": "GET, POST"})
    if isinstance(cause, InvalidOperationTypeError):
        # Only a mutation is refused by method: GET allows queries (and subscriptions, which
        # the schema refuses over HTTP), POST allows all three.
        return RequestRefusedError(
            405, "A mutation is sent by POST, never by GET.", headers={"Allow": "POST"}
        )
    if refusal.status_code != 400 or isinstance(cause, json.JSONDecodeError):
        return RequestRefusedError(refusal.status_code, refusal.reason)
    # No query, no operation of that name in the document, parameters of the wrong type, a batch.
    return RequestRefusedError(400, refusal.reason)


def _request_error_status(errors: Sequence[object]) -> int:
    first = errors[0]
    extensions = first.get("extensions") if isinstance(first, Mapping) else None
    code = extensions.get("code") if isinstance(extensions, Mapping) else None
    return REQUEST_ERROR_STATUS.get(code, 400) if isinstance(code, str) else 400


def _has_path(error: object) -> bool:
    return isinstance(error, Mapping) and error.get("path") is not None


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    """(media range, quality) of each well-formed entry of an Accept header."""
    ranges = []
    for entry in accept.split(","):
        media_range, *parameters = (piece.strip() for piece in entry.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                quality = float(value) if _QUALITY.fullmatch(value) else -1.0
        if "/" in media_range and quality >= 0:
            ranges.append((media_range.lower(), quality))
    return ranges


def _acceptance(media_type: str, ranges: list[tuple[str, float]]) -> tuple[float, int]:
    """The quality the most specific matching range gives, and its specificity (2 named,
    1 `type/*`, 0 `*/*`); (0, -1) when no range matches."""
    kind = media_type.split("/")[0]
    found = (0.0, -1)
    for media_range, quality in ranges:
        specificity = {media_type: 2, f"{kind}/*": 1, "*/*": 0}.get(media_range)
        if specificity is not None and specificity > found[1]:
            found = (quality, specificity)
    return found


def _is_utf8_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media_type, *parameters = (piece.strip() for piece in content_type.split(";"))
    charsets = [
        value.strip().strip('"').lower()
        for name, _, value in (parameter.partition("=") for parameter in parameters)
        if name.strip().lower() == "charset"
    ]
    return media_type.lower() == APPLICATION_JSON and all(
        charset == "utf-8" for charset in charsets
    )
