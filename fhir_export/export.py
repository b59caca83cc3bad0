"""FHIR R4 Bundles of what one caller may read of a child: the reads (reading.py) mapped to
resources (patient.py, card.py, consents.py, audit.py, documents.py) and gathered into
searchset Bundles (bundles.py).

Every Bundle holds exactly what the contracts let its caller read, read as that caller,
so an export is refused, and logged, as the same reads are over GraphQL.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from chaincode.base import Caller, Directory
from chaincode.gateway import Gateway

from . import reading
from .audit import audit_event
from .bundles import searchset
from .card import card_resources
from .consents import agreement_consent, permission_consent
from .documents import report_document
from .naming import Naming
from .patient import patient_named, patient_of
from .validated import JsonResource


def naming_of(network_id: str, base_url: str, directory: Directory) -> Naming:
    """How a network's resources are named at `base_url`: a person's organisation is the one
    `directory` enrolled them in, if that was in the role they are named in."""

    def org_of(uid: str, role: str) -> str | None:
        found = directory.user(uid)
        return found[0] if found is not None and found[1] == role else None

    return Naming(network_id=network_id, base_url=base_url, org_of=org_of)


class FhirExport:
    """Bundles read through `gateway` as each caller."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def everything(self, caller: Caller, child_id: str, naming: Naming) -> JsonResource:
        """The child's whole record as `caller` may read it (Patient/ID/$everything): the
        Patient first, then the card's resources, the agreements and the schools'
        permissions as Consents, and the reports as DocumentReferences.

        A school's Patient holds only the name its reports give. Refusals are those of
        reading.everything (NotFoundError, ForbiddenError), raised before anything is read
        past the refusing read.
        """
        record = await reading.everything(self.gateway, caller, child_id)
        resources = [_patient(record, naming)]
        if record.card is not None:
            resources += card_resources(record.card, naming)
        resources += _consents(record, naming)
        resources += [report_document(report, naming) for report in record.reports]
        path = f"Patient/{quote(record.child_id, safe='')}/$everything"
        return searchset(
            resources, naming, self_url=f"{naming.base_url}/{path}", total=len(resources)
        )

    async def consents(self, caller: Caller, child_id: str, naming: Naming) -> JsonResource:
        """The consents the caller may see for the child (Consent?patient=ID): its agreements
        and the schools' permissions to read its reports. A school gets its own permissions
        only, or an empty Bundle; anyone else readChild's refusal if it refuses them."""
        record = await reading.consents(self.gateway, caller, child_id)
        resources = _consents(record, naming)
        self_url = f"{naming.base_url}/Consent?patient={quote(record.child_id, safe='')}"
        return searchset(resources, naming, self_url=self_url, total=len(resources))

    async def audit_events(
        self,
        caller: Caller,
        child_id: str,
        first: int,
        after: str | None,
        naming: Naming,
        *,
        self_url: str,
        next_url_of: Callable[[str], str],
    ) -> JsonResource:
        """A page of the child's access log as AuditEvents, for its guardians (anyone else
        gets reading.access_log's refusal); the Bundle links `self_url`, and the next page,
        when one follows, at `next_url_of(position of the last entry)`."""
        page = await reading.access_log(self.gateway, caller, child_id, first, after)
        events = [audit_event(entry["item"], naming) for entry in page["entries"]]
        following = None
        if page["hasMore"] and page["entries"]:
            following = next_url_of(page["entries"][-1]["position"])
        return searchset(events, naming, self_url=self_url, next_url=following)


def _consents(record: reading.ChildRecord, naming: Naming) -> list[JsonResource]:
    """The agreements' Consents, then each report's permissions' (their grantors are the
    child's guardians, named only to those who may read the child)."""
    grantors = None if record.child is None else record.child["guardians"]
    consents = [agreement_consent(agreement, naming) for agreement in record.agreements]
    consents += [
        permission_consent(report, permission, grantors, naming)
        for report in record.reports
        for permission in report["permissions"]
    ]
    return consents


def _patient(record: reading.ChildRecord, naming: Naming) -> JsonResource:
    """The child as the caller may know it: whole when it read the child, else (a school) by
    the name its first report gives; ValueError for a record that has neither."""
    if record.child is not None:
        return patient_of(record.child, naming)
    content = record.reports[0]["content"] if record.reports else None
    if content is None:
        raise ValueError("A record without the child holds no report content to name it by.")
    return patient_named(record.child_id, content["childName"], naming)
