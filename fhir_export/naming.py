"""How the export names things of one network: resource URLs, people, organisations and
the identifier systems of children and records.

A person is named as the ledger names them, ORG/UID, under the network's `person`
system; a person whose organisation is unknown is named by display only, since a bare UID
does not identify anyone across organisations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaincode.people import person as org_person

# The reader the server records when it reads on no user's behalf (chaincode/consent.py).
SERVER_NAME = "healthledger"


@dataclass(frozen=True)
class Naming:
    """The names of one network's export.

    `network_id` is NetworkConfig.network_id; `base_url` is the FHIR base,
    "https://HOST:PORT/fhir" without a trailing slash; `org_of(uid, role)` gives the
    organisation of a person of role "doctor" or "parent", None if unknown.
    """

    network_id: str
    base_url: str
    org_of: Callable[[str, str], str | None]

    def system(self, kind: str) -> str:
        """The identifier system of `kind` (child, record, person, organization, server)."""
        return f"urn:healthledger:{self.network_id}:{kind}"

    def patient_reference(self, child_id: str) -> dict[str, Any]:
        return {"reference": f"Patient/{child_id}"}

    def child_identifier(self, child_id: str) -> dict[str, Any]:
        return {"system": self.system("child"), "value": child_id}

    def record_identifier(self, record_id: str) -> dict[str, Any]:
        """The identifier of a ledger record: an agreement, a report, an access entry."""
        return {"system": self.system("record"), "value": record_id}

    def person(self, uid: str, role: str, org: str | None = None) -> dict[str, Any]:
        """A Reference to the person `uid` of role `role`, as ORG/UID; the organisation is
        `org` if given, else `org_of(uid, role)`. Unknown organisation: display only."""
        organisation = org if org is not None else self.org_of(uid, role)
        if not organisation:
            return {"display": uid}
        named = org_person(organisation, uid)
        return {"identifier": {"system": self.system("person"), "value": named}, "display": named}

    def organization(self, org: str) -> dict[str, Any]:
        return {"identifier": {"system": self.system("organization"), "value": org}, "display": org}

    def server(self) -> dict[str, Any]:
        """A Reference to the server itself, the observer of every access log entry."""
        return {
            "identifier": {"system": self.system("server"), "value": self.network_id},
            "display": SERVER_NAME,
        }

    def full_url(self, resource_type: str, resource_id: str) -> str:
        return f"{self.base_url}/{resource_type}/{resource_id}"
