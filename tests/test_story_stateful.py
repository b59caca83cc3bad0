"""Random people doing random things: the access rules hold after every step.

Guardians, an unrelated parent, two doctors and two schools act in any order.
`progress` moves one family's story a legitimate step forward (so deep states —
approved reports, revoked permissions, revoked agreements — are reached);
`intrude` has anyone attempt any operation on anything. A model built only from
the calls that succeeded says who should see what. After each step everyone is
asked, and the answers must agree: schools never get card data nor an
unapproved report's content, nobody outside a child's relationships reads
anything about the child, card versions only grow, and the ledger verifies.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from authz.access import ChannelAccess
from authz.directory import NetworkDirectory
from authz.identity import Identity, IdentityVerifier
from authz.network import load_network
from chaincode.gateway import Gateway
from domain.errors import ForbiddenError, NotFoundError, RefusalError
from ledger_backends import open_ledger
from tests.networks import make_network

PARENTS = ["alice", "bob"]
DOCTORS = ["dr-house", "dr-quinn"]
SCHOOLS = {"school-a-office": "school-a", "school-b-office": "school-b"}
EVERYONE = [*PARENTS, *DOCTORS, *SCHOOLS, "hospital-admin"]


@dataclass
class Family:
    """What the successful calls established about one child."""

    child: str
    guardians: set[str]
    version: int = 1
    agreements: dict[str, str] = field(default_factory=dict)  # agreement id -> doctor
    active: dict[str, str] = field(default_factory=dict)  # doctor -> agreement id
    admissions: dict[str, str] = field(default_factory=dict)  # admission id -> school
    accepted: set[str] = field(default_factory=set)
    requests: dict[str, str] = field(default_factory=dict)  # request id -> school
    fulfilled: set[str] = field(default_factory=set)
    reports: dict[str, set[str]] = field(default_factory=dict)  # report id -> permitted schools
    report_school: dict[str, str] = field(default_factory=dict)  # report id -> requesting school


def _people(directory: Path) -> dict[str, Identity]:
    verifier = IdentityVerifier.from_network(load_network(directory))
    return {
        path.stem: verifier.identify(
            x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)
        )
        for path in directory.glob("users/*/*.pem")
    }


OPERATIONS = [
    "signAgreement",
    "acceptAgreement",
    "revokeAgreement",
    "updateMedicalCard",
    "createAdmissionRequest",
    "acceptAdmissionRequest",
    "rejectAdmissionRequest",
    "createReportRequest",
    "createReport",
    "approveReport",
    "revokeReportPermission",
]


def test_access_rules_hold_whatever_happens(tmp_path: Path) -> None:
    net = make_network(tmp_path / "network")
    network = load_network(net.directory)
    people = _people(net.directory)

    class Story(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.ledger = open_ledger("memory://", batch_timeout_ms=0)
            self.gateway = Gateway(
                {name: self.ledger.channel(name) for name in ("medical", "report")},
                ChannelAccess(network),
                NetworkDirectory(network),
            )
            self.families: list[Family] = []

        def attempt(self, actor: str, operation: str, family: Family, pick: int) -> Any:
            """`actor` tries `operation` on one of the family's objects; None if refused."""
            gw, who = self.gateway, people[actor]

            def one(items: Any) -> str:
                ordered = sorted(items)
                return ordered[pick % len(ordered)] if ordered else "missing"

            calls = {
                "signAgreement": lambda: gw.submit(
                    who,
                    "medical",
                    "signAgreement",
                    {"childId": family.child, "doctorUid": DOCTORS[pick % 2]},
                ),
                "acceptAgreement": lambda: gw.submit(
                    who, "medical", "acceptAgreement", {"id": one(family.agreements)}
                ),
                "revokeAgreement": lambda: gw.submit(
                    who, "medical", "revokeAgreement", {"id": one(family.agreements)}
                ),
                "updateMedicalCard": lambda: gw.submit(
                    who,
                    "medical",
                    "updateMedicalCard",
                    {
                        "childId": family.child,
                        "expectedVersion": family.version - (pick % 3 == 2),
                        "patch": {"healthGroup": 1 + pick % 5, "allergies": [f"a{pick}"]},
                    },
                ),
                "createAdmissionRequest": lambda: gw.create_admission_request(
                    who, family.child, list(SCHOOLS.values())[pick % 2]
                ),
                "acceptAdmissionRequest": lambda: gw.submit(
                    who, "report", "acceptAdmissionRequest", {"id": one(family.admissions)}
                ),
                "rejectAdmissionRequest": lambda: gw.submit(
                    who,
                    "report",
                    "rejectAdmissionRequest",
                    {"id": one(family.admissions), "reason": "No places."},
                ),
                "createReportRequest": lambda: gw.submit(
                    who,
                    "report",
                    "createReportRequest",
                    {"admissionRequestId": one(family.accepted)},
                ),
                "createReport": lambda: gw.create_report(who, one(family.requests), "Healthy."),
                "approveReport": lambda: gw.submit(
                    who,
                    "report",
                    "approveReport",
                    {
                        "id": one(family.reports),
                        "schools": sorted(SCHOOLS.values())[: 1 + pick % 2],
                    },
                ),
                "revokeReportPermission": lambda: gw.submit(
                    who,
                    "report",
                    "revokeReportPermission",
                    {"id": one(family.reports), "school": list(SCHOOLS.values())[pick % 2]},
                ),
            }
            try:
                result = asyncio.run(calls[operation]())
            except RefusalError:
                return None
            self.record(actor, operation, family, result)
            return result

        def record(self, actor: str, operation: str, family: Family, result: Any) -> None:
            """Update the model from a call that succeeded, checking it was allowed."""
            org = SCHOOLS.get(actor)
            if operation == "signAgreement":
                assert actor in family.guardians
                family.agreements[result["id"]] = result["doctorUid"]
            elif operation == "acceptAgreement":
                assert family.agreements[result["id"]] == actor
                family.active[actor] = result["id"]
            elif operation == "revokeAgreement":
                assert actor in family.guardians
                doctor = family.agreements[result["id"]]
                if family.active.get(doctor) == result["id"]:
                    del family.active[doctor]
            elif operation == "updateMedicalCard":
                assert actor in family.active and result["version"] == family.version + 1
                family.version = result["version"]
            elif operation == "createAdmissionRequest":
                assert actor in family.guardians
                family.admissions[result["id"]] = result["school"]
            elif operation in ("acceptAdmissionRequest", "rejectAdmissionRequest"):
                assert family.admissions[result["id"]] == org
                if operation == "acceptAdmissionRequest":
                    family.accepted.add(result["id"])
            elif operation == "createReportRequest":
                assert org == result["school"] and result["admissionRequestId"] in family.accepted
                family.requests[result["id"]] = result["school"]
            elif operation == "createReport":
                assert actor in family.active and result["cardVersion"] == family.version
                family.reports[result["id"]] = set()
                family.report_school[result["id"]] = family.requests[result["reportRequestId"]]
            elif operation == "approveReport":
                assert actor in family.guardians and not family.reports[result["id"]]
                family.reports[result["id"]] = set(result["permittedSchools"])
            elif operation == "revokeReportPermission":
                assert actor in family.guardians
                family.reports[result["id"]] = set(result["permittedSchools"])

        @rule(parent=st.sampled_from(PARENTS), together=st.booleans())
        def register(self, parent: str, together: bool) -> None:
            if len(self.families) >= 3:
                return
            others = [p for p in PARENTS if p != parent] if together else []
            child = asyncio.run(
                self.gateway.submit(
                    people[parent],
                    "medical",
                    "registerChild",
                    {"fullName": "Kid", "birthDate": "2019-02-03", "otherGuardians": others},
                )
            )
            for other in others:
                asyncio.run(
                    self.gateway.submit(
                        people[other], "medical", "acceptGuardianship", {"childId": child["id"]}
                    )
                )
            self.families.append(Family(child["id"], {parent, *others}))

        @rule(which=st.integers(0, 2), pick=st.integers(0, 5))
        def progress(self, which: int, pick: int) -> None:
            """The next legitimate step of one family's story, done by the right person."""
            if not self.families:
                return
            family = self.families[which % len(self.families)]
            actor, operation = self.next_step(family, pick)
            self.attempt(actor, operation, family, pick)

        def next_step(self, family: Family, pick: int) -> tuple[str, str]:
            """The story's next step for this family, and who takes it."""
            guardian = sorted(family.guardians)[pick % len(family.guardians)]
            pending = [d for d in family.agreements.values() if d not in family.active]
            doctor = sorted(family.active)[0] if family.active else None
            staff = {org: s for s, org in SCHOOLS.items()}
            if doctor is None:
                return (pending[0], "acceptAgreement") if pending else (guardian, "signAgreement")
            if family.version < 2:
                return doctor, "updateMedicalCard"
            if not family.admissions:
                return guardian, "createAdmissionRequest"
            admission, school = sorted(family.admissions.items())[0]
            if admission not in family.accepted:
                return staff[school], "acceptAdmissionRequest"
            if not family.requests:
                return staff[school], "createReportRequest"
            if not family.reports:
                return doctor, "createReport"
            if not any(family.reports.values()):
                return guardian, "approveReport"
            endings = [
                (guardian, "revokeReportPermission"),
                (doctor, "updateMedicalCard"),
                (guardian, "revokeAgreement"),
            ]
            return endings[pick % len(endings)]

        @rule(
            actor=st.sampled_from(EVERYONE),
            operation=st.sampled_from(OPERATIONS),
            which=st.integers(0, 2),
            pick=st.integers(0, 5),
        )
        def intrude(self, actor: str, operation: str, which: int, pick: int) -> None:
            if self.families:
                self.attempt(actor, operation, self.families[which % len(self.families)], pick)

        @invariant()
        def children_are_seen_only_by_their_people(self) -> None:
            for family in self.families:
                for uid in [*PARENTS, *DOCTORS]:
                    allowed = uid in family.guardians or uid in family.active
                    try:
                        card = asyncio.run(
                            self.gateway.evaluate(
                                people[uid], "medical", "readCard", {"childId": family.child}
                            )
                        )
                    except NotFoundError:
                        assert not allowed, f"{uid} lost access to a child"
                    else:
                        assert allowed, f"{uid} read a card outside their relationships"
                        assert card["version"] == family.version

        @invariant()
        def schools_see_report_content_only_when_permitted(self) -> None:
            for staff, school in SCHOOLS.items():
                for family in self.families:
                    try:
                        asyncio.run(
                            self.gateway.evaluate(
                                people[staff], "medical", "readCard", {"childId": family.child}
                            )
                        )
                    except ForbiddenError:
                        pass
                    else:
                        raise AssertionError("a school read a medical card")
                    for report, permitted in family.reports.items():
                        try:
                            seen = asyncio.run(
                                self.gateway.evaluate(
                                    people[staff], "report", "readReport", {"id": report}
                                )
                            )
                        except NotFoundError:
                            assert school != family.report_school[report]
                            assert school not in permitted
                            continue
                        # A school's view is its own, whatever other schools may read.
                        assert (seen["content"] is not None) == (school in permitted)
                        assert seen["status"] == ("APPROVED" if school in permitted else "READY")
                        assert seen["permittedSchools"] == ([school] if school in permitted else [])

        def teardown(self) -> None:
            for name in ("medical", "report"):
                verification = self.ledger.channel(name).verify()
                assert verification.ok, verification.reason
            self.ledger.close()

    run_state_machine_as_test(
        Story,
        settings=settings(
            max_examples=30,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
