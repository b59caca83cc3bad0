"""What the FHIR endpoints answer with: a searchset Bundle, or an OperationOutcome."""

from __future__ import annotations

import uuid

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from ledger_backends.records import format_timestamp, utc_now

from .naming import Naming
from .validated import JsonResource, validated

# FHIR issue types a refusal or failure is answered with.
ISSUE_CODES = frozenset(
    {
        "not-found",
        "forbidden",
        "invalid",
        "login",
        "conflict",
        "exception",
        "not-supported",
        "transient",
    }
)


def searchset(
    resources: list[JsonResource],
    naming: Naming,
    *,
    self_url: str,
    next_url: str | None = None,
    total: int | None = None,
) -> JsonResource:
    """A searchset Bundle of `resources` in their order, each a match under its full URL,
    with a fresh id, the time it was made, its self link, the next page's link if given,
    and the total if given. `resources` are the builders' own, each parsed by its model
    already: the Bundle's model parses the Bundle and its entries around them, not them
    again."""
    links = [{"relation": "self", "url": self_url}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    bundle: JsonResource = {
        "resourceType": "Bundle",
        "id": uuid.uuid4().hex,
        "type": "searchset",
        "timestamp": format_timestamp(utc_now()),
    }
    if total is not None:
        bundle["total"] = total
    bundle["link"] = links
    entries = [
        {
            "fullUrl": naming.full_url(resource["resourceType"], resource["id"]),
            "search": {"mode": "match"},
        }
        for resource in resources
    ]
    if entries:
        bundle["entry"] = entries
    validated(Bundle, bundle)
    if entries:
        bundle["entry"] = [
            {"fullUrl": entry["fullUrl"], "resource": resource, "search": entry["search"]}
            for entry, resource in zip(entries, resources, strict=True)
        ]
    return bundle


def operation_outcome(issue_code: str, message: str) -> JsonResource:
    """An error OperationOutcome of FHIR issue type `issue_code` whose diagnostics are
    `message`. ValueError for an issue type not in ISSUE_CODES."""
    if issue_code not in ISSUE_CODES:
        raise ValueError(f"{issue_code!r} is not an issue type the FHIR endpoints answer with.")
    outcome: JsonResource = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": issue_code, "diagnostics": message}],
    }
    return validated(OperationOutcome, outcome)
