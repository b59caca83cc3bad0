"""Access log entries as FHIR AuditEvents, in the shape of IHE BALP's PatientRead: who read
what of which child, when, under which purpose, and whether it was permitted."""

from __future__ import annotations

from fhir.resources.R4B.auditevent import AuditEvent

from chaincode.records import AccessEntryView

from . import codes
from .naming import SERVER_NAME, Naming
from .validated import JsonResource, validated

# The restful interaction a permitted or refused read of each object stands for.
INTERACTIONS = {
    "CHILD": codes.READ,
    "MEDICAL_CARD": codes.READ,
    "REPORT_CONTENT": codes.READ,
    "CARD_HISTORY": codes.HISTORY_INSTANCE,
}
# FHIR's AuditEvent.outcome: 0 success, 4 minor failure (a refusal the caller can act on).
OUTCOMES = {"PERMITTED": "0", "REFUSED": "4", "ERASED": "0"}
SERVER_ROLE = "server"


def audit_event(entry: AccessEntryView, naming: Naming) -> JsonResource:
    """The AuditEvent of one access log entry, of the same id. A read is action R with
    subtype read (history-instance for the card's history); the erasure (outcome ERASED)
    is a delete, action D. The server as reader is named "healthledger" and is not the
    requestor. ValueError for an object, outcome, purpose or role the log cannot hold."""
    what, outcome = entry["what"], entry["outcome"]
    if what not in INTERACTIONS:
        raise ValueError(f"{what!r} is not an object an access log names.")
    if outcome not in OUTCOMES:
        raise ValueError(f"{outcome!r} is not an access log outcome.")
    erased = outcome == "ERASED"
    event: JsonResource = {
        "resourceType": "AuditEvent",
        "id": entry["id"],
        "type": dict(codes.RESTFUL_OPERATION),
        "subtype": [dict(codes.DELETE if erased else INTERACTIONS[what])],
        "action": "D" if erased else "R",
        "recorded": entry["at"],
        "outcome": OUTCOMES[outcome],
    }
    if outcome == "REFUSED":
        event["outcomeDesc"] = "Refused"
    event["purposeOfEvent"] = [codes.purpose(entry["purpose"])]
    event["agent"] = [_reader(entry, naming)]
    event["source"] = {
        "site": naming.network_id,
        "observer": naming.server(),
        "type": [dict(codes.APPLICATION_SERVER)],
    }
    event["entity"] = [
        {
            "what": naming.patient_reference(entry["childId"]),
            "type": dict(codes.PERSON),
            "role": dict(codes.PATIENT_ROLE),
        },
        _record_read(entry, naming),
    ]
    return validated(AuditEvent, event)


def _reader(entry: AccessEntryView, naming: Naming) -> JsonResource:
    role = entry["readerRole"]
    server = role == SERVER_ROLE
    return {
        "type": codes.concept(codes.INFORMATION_RECIPIENT),
        "role": [codes.concept(codes.role(role))],
        "who": (
            {"display": SERVER_NAME}
            if server
            else naming.person(entry["readerUid"], role, org=entry["readerOrg"])
        ),
        "requestor": not server,
        "purposeOfUse": [codes.purpose(entry["purpose"])],
    }


def _record_read(entry: AccessEntryView, naming: Naming) -> JsonResource:
    """The record read, by its ledger id, with its version and the block of the entry."""
    details = []
    if entry["version"] is not None:
        details.append({"type": "version", "valueString": str(entry["version"])})
    details.append({"type": "blockNumber", "valueString": str(entry["blockNumber"])})
    return {
        "what": {"identifier": naming.record_identifier(entry["recordId"])},
        "type": dict(codes.SYSTEM_OBJECT),
        "role": dict(codes.DOMAIN_RESOURCE),
        "name": entry["what"],
        "detail": details,
    }
