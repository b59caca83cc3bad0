"""A report for school admission as a FHIR DocumentReference carrying its content."""

from __future__ import annotations

import base64
from typing import Any, cast

import rfc8785
from fhir.resources.R4B.documentreference import DocumentReference

from chaincode.records import ReportView

from . import codes
from .naming import Naming
from .validated import JsonResource, validated

DESCRIPTION = "Health report for school admission"


def report_document(report: ReportView, naming: Naming) -> JsonResource:
    """The report as a DocumentReference of the same id, written by its doctor at createdAt.

    Its content comes twice: the report's content (the child's name, health and PE groups,
    allergies, chronic conditions, vaccinations, conclusion) as RFC 8785 JSON text, and the
    doctor's conclusion as plain text.
    ValueError for a report given without its content (as a caller who may not read it
    gets it).
    """
    content = report["content"]
    if content is None:
        raise ValueError("A report can be exported only with its content.")
    document: JsonResource = {
        "resourceType": "DocumentReference",
        "id": report["id"],
        "identifier": [naming.record_identifier(report["id"])],
        "status": "current",
        "docStatus": "final",
        "type": codes.concept(codes.SCHOOL_HEALTH_REPORT),
        "subject": naming.patient_reference(report["childId"]),
        "date": report["createdAt"],
        "author": [naming.person(report["authorUid"], "doctor")],
        "description": DESCRIPTION,
        "content": [
            {
                "attachment": {
                    "contentType": "application/json",
                    "data": _base64(rfc8785.dumps(cast(dict[str, Any], content))),
                    "title": "Health report",
                    "creation": report["createdAt"],
                }
            },
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": _base64(content["conclusion"].encode()),
                    "title": "Conclusion",
                }
            },
        ],
    }
    return validated(DocumentReference, document)


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
