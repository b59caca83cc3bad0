"""FHIR R4 (R4B, FHIR 4.3.0) over HTTP, behind the identity gate: a read-only export.

- `GET /fhir/Patient/ID/$everything`: the child's whole record as the caller may read it.
- `GET /fhir/Consent?patient=ID` (or `patient=Patient/ID`): its agreements and the
  schools' permissions to read its reports.
- `GET /fhir/AuditEvent?patient=ID&_count=N&_cursor=C`: a page of its access log, for its
  guardians; `_count` 1 to 200 (50 by default), `_cursor` from the Bundle's `next` link,
  sealed to the caller and the patient (api.cursors).
- `GET /fhir/metadata`: the CapabilityStatement, listing exactly these interactions.

Every answer is `application/fhir+json; charset=utf-8` and never stored. The Bundles come
from fhir_export, read through the gateway as the caller, so the contracts' rules and the
access log apply as for the same GraphQL reads, and a refusal carries the sentence the
GraphQL refusal of the same read carries, in an OperationOutcome: NOT_FOUND 404
`not-found`, FORBIDDEN 403 `forbidden`, BAD_USER_INPUT 400 `invalid`, UNAUTHENTICATED 401
`login` (the identity gate's, `unauthenticated`), CONFLICT 409 `conflict`; a ledger that
does not answer or is damaged 503 `transient`, logged in one line as GraphQL's UNAVAILABLE
is; any other failure 500 `exception`, logged with its traceback. An unknown path under
/fhir is 404 `not-found`, a method other than GET 405 `not-supported`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import date
from importlib.metadata import version
from typing import Any
from urllib.parse import urlencode

from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from starlette.datastructures import QueryParams
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from authz.identity import Identity
from chaincode.paging import FIRST_MAX
from chaincode.people import person_of
from domain.errors import (
    BadInputError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RefusalError,
    UnauthenticatedError,
)
from fhir_export.bundles import operation_outcome
from fhir_export.export import naming_of
from fhir_export.naming import Naming
from ledger_backends import BackendUnavailableError, LedgerDamagedError, ReadConflictError

from .cursors import cursor_key
from .services import Services
from .web import NO_STORE

FHIR_JSON = "application/fhir+json; charset=utf-8"
FHIR_VERSION = "4.3.0"
AUDIT_EVENTS = "fhir.AuditEvent"
AUDIT_EVENTS_DEFAULT_COUNT = 50
# What a FHIR id may be: the patient a search names must be one.
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
EVERYTHING = re.compile(r"Patient/(?P<id>[^/]+)/\$everything")
# When the CapabilityStatement below last changed.
CAPABILITIES_CHANGED = date(2026, 12, 7)
FAULT = "The server could not answer; the error was logged."
UNAVAILABLE = "The ledger is unavailable right now. Try again shortly."

# A refusal's HTTP status and FHIR issue type, by its class.
REFUSALS: dict[type[RefusalError], tuple[int, str]] = {
    NotFoundError: (404, "not-found"),
    ForbiddenError: (403, "forbidden"),
    BadInputError: (400, "invalid"),
    UnauthenticatedError: (401, "login"),
    ConflictError: (409, "conflict"),
}

log = logging.getLogger("healthledger.api")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Resource = dict[str, Any]


def fhir_answer(
    resource: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A resource as the FHIR endpoints answer it: FHIR JSON, never stored."""
    return Response(
        json.dumps(resource, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        media_type=FHIR_JSON,
        headers={**NO_STORE, **(headers or {})},
    )


def refusal_answer(refusal: RefusalError) -> Response:
    """A refusal as an OperationOutcome with its sentence, at its status; a refusal of no
    kind REFUSALS names is answered as a failure."""
    for kind, (status, issue) in REFUSALS.items():
        if isinstance(refusal, kind):
            return fhir_answer(operation_outcome(issue, str(refusal)), status)
    return fault_answer(refusal)


def outage_answer(outage: BackendUnavailableError | LedgerDamagedError) -> Response:
    """A ledger that does not answer (or whose chain is damaged, which its own message says
    and where): 503, an OperationOutcome `transient`, one log line without a traceback."""
    log.warning("UNAVAILABLE: %s", outage)
    message = str(outage) if isinstance(outage, LedgerDamagedError) else UNAVAILABLE
    return fhir_answer(operation_outcome("transient", message), 503)


def fault_answer(fault: Exception) -> Response:
    """A failure, logged with its traceback: 500, an OperationOutcome `exception` saying only
    that it was logged."""
    log.error("A FHIR request failed.", exc_info=fault)
    return fhir_answer(operation_outcome("exception", FAULT), 500)


def unauthenticated(scope: Scope, refusal: UnauthenticatedError) -> Response:
    """The identity gate's refusal of a request to /fhir: 401, an OperationOutcome `login`."""
    del scope
    return refusal_answer(refusal)


def naming_at(services: Services, connection: HTTPConnection) -> Naming:
    """How resources are named for this request (or websocket): under its own base URL, +
    `fhir`, in https (or http) as the endpoints are reached."""
    base = connection.base_url
    if base.scheme in ("ws", "wss"):
        base = base.replace(scheme="https" if base.scheme == "wss" else "http")
    return naming_of(services.network.network_id, f"{base}fhir", services.gateway.directory)


class FhirEndpoints:
    """The ASGI app of every path under /fhir (behind the identity gate, which puts the
    caller's Identity in the scope)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self._answer(request, request.path_params.get("path", ""))
        await response(scope, receive, send)

    async def _answer(self, request: Request, path: str) -> Response:
        everything = EVERYTHING.fullmatch(path)
        if path not in ("metadata", "Consent", "AuditEvent") and everything is None:
            message = f"This server answers no FHIR request at {request.url.path}."
            return fhir_answer(operation_outcome("not-found", message), 404)
        if request.method != "GET":
            message = "The FHIR endpoints answer GET only: this server exports, it takes nothing."
            return fhir_answer(
                operation_outcome("not-supported", message), 405, headers={"Allow": "GET"}
            )
        identity: Identity = request.scope["state"]["identity"]
        naming = naming_at(self.services, request)
        export = self.services.fhir
        try:
            if everything is not None:
                bundle = await export.everything(identity, everything["id"], naming)
            elif path == "Consent":
                patient = _patient(request.query_params)
                bundle = await export.consents(identity, patient, naming)
            elif path == "AuditEvent":
                bundle = await self._audit_events(request, identity, naming)
            else:
                bundle = capability_statement(naming.base_url)
        except RefusalError as refusal:
            return refusal_answer(refusal)
        except ReadConflictError:
            return refusal_answer(ConflictError("Others changed the same records; ask again."))
        except (BackendUnavailableError, LedgerDamagedError) as outage:
            return outage_answer(outage)
        except Exception as fault:
            return fault_answer(fault)
        return fhir_answer(bundle)

    async def _audit_events(self, request: Request, identity: Identity, naming: Naming) -> Resource:
        """A page of AuditEvents; BadInputError for a `_count` out of 1..200 and for a
        `_cursor` not sealed for this caller and patient."""
        params = request.query_params
        patient = _patient(params)
        count = _count(params)
        key = cursor_key(self.services.network.server.key)
        person = person_of(identity)
        arguments = {"patient": patient}
        cursor = _single(params, "_cursor")
        after = None if cursor is None else key.open(cursor, AUDIT_EVENTS, person, arguments)

        def page_url(sealed: str | None) -> str:
            query: dict[str, str | int] = {"patient": patient, "_count": count}
            if sealed is not None:
                query["_cursor"] = sealed
            return f"{naming.base_url}/AuditEvent?{urlencode(query)}"

        return await self.services.fhir.audit_events(
            identity,
            patient,
            count,
            after,
            naming,
            self_url=page_url(cursor),
            next_url_of=lambda position: page_url(
                key.seal(AUDIT_EVENTS, person, arguments, position)
            ),
        )


def _single(params: QueryParams, name: str) -> str | None:
    """A search parameter given at most once; BadInputError if it is repeated."""
    given = params.getlist(name)
    if len(given) > 1:
        raise BadInputError(f"Give {name} once.")
    return given[0] if given else None


def _patient(params: QueryParams) -> str:
    """The child a search names: `patient=ID` or `patient=Patient/ID`."""
    given = _single(params, "patient")
    if given is None:
        raise BadInputError("Name the child to search for: patient=ID.")
    child_id = given.removeprefix("Patient/")
    if not FHIR_ID.fullmatch(child_id):
        raise BadInputError("patient must be a child's id, or Patient/ and its id.")
    return child_id


def _count(params: QueryParams) -> int:
    given = _single(params, "_count")
    if given is None:
        return AUDIT_EVENTS_DEFAULT_COUNT
    # Three digits at most: int() of a long string of digits is slow, and refused.
    if not (
        given.isascii() and given.isdigit() and len(given) <= 3 and 1 <= int(given) <= FIRST_MAX
    ):
        raise BadInputError(f"_count must be a whole number from 1 to {FIRST_MAX}.")
    return int(given)


def capability_statement(base_url: str) -> Resource:
    """What this server answers, as a CapabilityStatement validated by its R4B model:
    Patient $everything, and the search of Consent and of AuditEvent by patient."""
    by_patient = {
        "name": "patient",
        "type": "reference",
        "documentation": "The child: its id, or Patient/ and its id. Required.",
    }
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CAPABILITIES_CHANGED.isoformat(),
        "publisher": "healthledger",
        "kind": "instance",
        "software": {"name": "healthledger", "version": version("healthledger")},
        "implementation": {
            "description": "healthledger: children's health records, exported read-only",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Read-only. Every answer holds what the caller's role and relationship to "
                    "the child let them read, and every read of a child's data is logged."
                ),
                "security": {
                    "cors": False,
                    "description": (
                        "Mutual TLS: the client certificate the network's organisations issue "
                        "names the caller (organisation, user id, role)."
                    ),
                },
                "resource": [
                    {
                        "type": "Patient",
                        "operation": [
                            {
                                "name": "everything",
                                "definition": (
                                    "http://hl7.org/fhir/OperationDefinition/Patient-everything"
                                ),
                                "documentation": (
                                    "GET only, without parameters: the child, its medical "
                                    "card, consents and reports."
                                ),
                            }
                        ],
                    },
                    {
                        "type": "Consent",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [by_patient],
                    },
                    {
                        "type": "AuditEvent",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [
                            by_patient,
                            {
                                "name": "_count",
                                "type": "number",
                                "documentation": (
                                    f"Entries a page: 1 to {FIRST_MAX}, "
                                    f"{AUDIT_EVENTS_DEFAULT_COUNT} by default."
                                ),
                            },
                        ],
                    },
                ],
            }
        ],
    }
    checked: Resource = CapabilityStatement.model_validate(statement).model_dump(
        mode="json", exclude_none=True
    )
    return checked
