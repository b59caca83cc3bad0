"""Random people doing random things: the access rules hold after every step.

Guardians, an unrelated parent, two doctors and two schools act in any order.
`progress` moves one family's story a legitimate step forward (so deep states —
approved reports, revoked permissions, revoked agreements — are reached);
`intrude` has anyone attempt any operation on anything. A model built only from
the calls that succeeded says who should see what. After each step everyone is
asked, and the answers must agree: schools never get card data nor an
unapproved report's content, nobody outside a child's relationships reads
anything about the child, card versions only grow, and the ledger verifies.

`read` has anyone read any protected object (the child, its card, the card's
history, the list of children, a report's content), and the model counts every
read that succeeded — those, the checks above and the doctor's card read for a
report — with the reader, object, record, version and the purpose the model
says it was granted under. After each step the PERMITTED entries of each
child's access log must be exactly that multiset, no entry may hold more than
who read what and when, and nobody but the child's guardians may list it.

`erase` has a guardian (or the server, for an operator) erase a family's child:
from then on nobody reads or changes anything of it, lists leave it out, its
access log lists only the erasure, and the other families go on as before.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from authz.access import ChannelAccess
from authz.directory import NetworkDirectory
from authz.identity import Identity, IdentityVerifier
from authz.network import load_network
from chaincode.consent import SERVER
from chaincode.gateway import Gateway
from chaincode.testing import fresh_keyrings
from domain.errors import ForbiddenError, NotFoundError, RefusalError
from ledger_backends import open_ledger
from tests.contract_checks import ENTRY_FIELDS
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
    report_author: dict[str, str] = field(default_factory=dict)  # report id -> doctor
    erased: bool = False


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


READS = ["readChild", "readCard", "cardHistory", "listChildren", "readReport", "listReports"]
# A read: (child, reader, object, record, version, purpose).
Read = tuple[str, str, str, str, int | None, str]
_T = TypeVar("_T")


def _permitted(entries: list[Any]) -> Counter[Read]:
    """The reads PERMITTED entries say were made."""
    return Counter(
        (e["childId"], e["readerUid"], e["what"], e["recordId"], e["version"], e["purpose"])
        for e in entries
        if e["outcome"] == "PERMITTED"
    )


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
                keyrings=fresh_keyrings("medical", "report"),
            )
            self.families: list[Family] = []
            self.reads: Counter[Read] = Counter()
            # The PERMITTED entries checked so far, and each child's newest entry checked.
            self.logged: Counter[Read] = Counter()
            self.newest: dict[str, str] = {}
            # One event loop for the whole story, as a server has: a loop (and thread pool)
            # per call cost most of this test's time.
            self.loop = asyncio.Runner()

        def await_(self, call: Coroutine[Any, Any, _T]) -> _T:
            """The result of `call`, run on the story's event loop."""
            return self.loop.run(call)

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
            if (
                operation == "createReport"
                and actor in family.active
                and family.requests
                and not family.erased
            ):
                # The gateway reads the card as the doctor before the contract decides.
                self.count(family, actor, "MEDICAL_CARD", family.child, family.version)
            try:
                result = self.await_(calls[operation]())
            except RefusalError:
                return None
            assert not family.erased, f"{actor} did {operation} for an erased child"
            self.record(actor, operation, family, result)
            return result

        def purpose(self, family: Family, actor: str, report: str | None = None) -> str | None:
            """The purpose the model grants `actor` to read the child's data (or the report's
            content) under; None: refused."""
            if family.erased:
                return None
            if actor in family.guardians:
                return "GUARDIAN"
            if report is None:
                return "TREATMENT" if actor in family.active else None
            if family.report_author[report] == actor:
                return "TREATMENT"
            return "SCHOOL_ADMISSION" if SCHOOLS.get(actor) in family.reports[report] else None

        def count(
            self, family: Family, actor: str, what: str, record: str, version: int | None
        ) -> None:
            """A read that succeeded, under the purpose the model grants."""
            report = record if what == "REPORT_CONTENT" else None
            purpose = self.purpose(family, actor, report)
            assert purpose is not None, f"{actor} read {what} of {record} without a purpose"
            self.reads[(family.child, actor, what, record, version, purpose)] += 1

        def family_of(self, child: str) -> Family:
            return next(f for f in self.families if f.child == child)

        def family_of_report(self, report: str) -> Family:
            return next(f for f in self.families if report in f.reports)

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
                family.report_author[result["id"]] = actor
            elif operation == "approveReport":
                assert actor in family.guardians
                assert set(result["permittedSchools"]) >= family.reports[result["id"]]
                family.reports[result["id"]] = set(result["permittedSchools"])
            elif operation == "revokeReportPermission":
                assert actor in family.guardians
                family.reports[result["id"]] = set(result["permittedSchools"])

        @rule(parent=st.sampled_from(PARENTS), together=st.booleans())
        def register(self, parent: str, together: bool) -> None:
            if len(self.families) >= 3:
                return
            others = [p for p in PARENTS if p != parent] if together else []
            child = self.await_(
                self.gateway.submit(
                    people[parent],
                    "medical",
                    "registerChild",
                    {"fullName": "Kid", "birthDate": "2019-02-03", "otherGuardians": others},
                )
            )
            for other in others:
                self.await_(
                    self.gateway.submit(
                        people[other], "medical", "acceptGuardianship", {"childId": child["id"]}
                    )
                )
            self.families.append(Family(child["id"], {parent, *others}))

        @rule(which=st.integers(0, 2), by_server=st.booleans())
        def erase(self, which: int, by_server: bool) -> None:
            """A guardian erases the family's child, confirming with its name, or the server
            does; again, a guardian is told it is erased and the server changes nothing."""
            if not self.families:
                return
            family = self.families[which % len(self.families)]
            guardian = people[sorted(family.guardians)[0]]
            try:
                receipt = self.await_(
                    self.gateway.erase_child(SERVER, family.child, None)
                    if by_server
                    else self.gateway.erase_child(guardian, family.child, "Kid")
                )
            except NotFoundError as refused:
                assert family.erased and not by_server
                assert "erased on" in str(refused)
                return
            assert receipt["childId"] == family.child
            assert receipt["channels"] == ["medical", "report"]
            family.erased = True
            # Its entries went with its keys: what was read of it is no longer in any log.
            self.reads = Counter({r: n for r, n in self.reads.items() if r[0] != family.child})
            self.logged = Counter({r: n for r, n in self.logged.items() if r[0] != family.child})

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

        @rule(
            actor=st.sampled_from(EVERYONE),
            kind=st.sampled_from(READS),
            which=st.integers(0, 2),
            pick=st.integers(0, 5),
        )
        def read(self, actor: str, kind: str, which: int, pick: int) -> None:
            """`actor` reads protected data of a family; the model counts what it was given."""
            if not self.families:
                return
            family = self.families[which % len(self.families)]
            reports = sorted(family.reports)
            report = reports[pick % len(reports)] if reports else "report-missing"
            channel, args = {
                "readChild": ("medical", {"childId": family.child}),
                "readCard": ("medical", {"childId": family.child}),
                "cardHistory": ("medical", {"childId": family.child, "first": 1 + pick}),
                "listChildren": ("medical", {"first": 200}),
                "readReport": ("report", {"id": report}),
                "listReports": ("report", {"first": 200}),
            }[kind]
            try:
                found = self.await_(self.gateway.evaluate(people[actor], channel, kind, args))
            except RefusalError:
                if kind in ("readChild", "readCard", "cardHistory"):
                    assert self.purpose(family, actor) is None, f"{actor} was refused {kind}"
                return
            if kind == "readChild":
                self.count(family, actor, "CHILD", family.child, None)
            elif kind in ("readCard", "cardHistory"):
                what = "MEDICAL_CARD" if kind == "readCard" else "CARD_HISTORY"
                self.count(family, actor, what, family.child, family.version)
            elif kind == "listChildren":
                for entry in found["entries"]:
                    child = self.family_of(entry["item"]["id"])
                    assert not child.erased, f"{actor} listed an erased child"
                    self.count(child, actor, "CHILD", child.child, None)
            else:
                seen = [found] if kind == "readReport" else [e["item"] for e in found["entries"]]
                for view in seen:
                    owner = self.family_of_report(view["id"])
                    assert not owner.erased, f"{actor} saw a report of an erased child"
                    allowed = self.purpose(owner, actor, view["id"]) is not None
                    assert (view["content"] is not None) == allowed, f"{actor}: {view['id']}"
                    if allowed:
                        self.count(owner, actor, "REPORT_CONTENT", view["id"], None)

        @invariant()
        def children_are_seen_only_by_their_people(self) -> None:
            for family in self.families:
                for uid in [*PARENTS, *DOCTORS]:
                    allowed = not family.erased and (
                        uid in family.guardians or uid in family.active
                    )
                    try:
                        card = self.await_(
                            self.gateway.evaluate(
                                people[uid], "medical", "readCard", {"childId": family.child}
                            )
                        )
                    except NotFoundError:
                        assert not allowed, f"{uid} lost access to a child"
                    else:
                        assert allowed, f"{uid} read a card outside their relationships"
                        assert card["version"] == family.version
                        self.count(family, uid, "MEDICAL_CARD", family.child, family.version)

        @invariant()
        def schools_see_report_content_only_when_permitted(self) -> None:
            for staff, school in SCHOOLS.items():
                for family in self.families:
                    try:
                        self.await_(
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
                            seen = self.await_(
                                self.gateway.evaluate(
                                    people[staff], "report", "readReport", {"id": report}
                                )
                            )
                        except NotFoundError:
                            assert family.erased or school != family.report_school[report]
                            assert family.erased or school not in permitted
                            continue
                        assert not family.erased, f"{staff} read a report of an erased child"
                        # A school's view is its own, whatever other schools may read.
                        assert (seen["content"] is not None) == (school in permitted)
                        if seen["content"] is not None:
                            self.count(family, staff, "REPORT_CONTENT", report, None)
                        assert seen["status"] == ("APPROVED" if school in permitted else "READY")
                        assert seen["permittedSchools"] == ([school] if school in permitted else [])

        @invariant()
        def the_access_log_holds_every_read_and_only_its_guardians_list_it(self) -> None:
            """Checked on the entries added since the step before (entries never change, and
            their ids are in time order); the whole logs once more at teardown."""
            new, strangers = self.await_(self.access_logs(since=self.newest))
            for family, entries in zip(self.families, new, strict=True):
                self.check_entries(family, entries)
                if entries:
                    self.newest[family.child] = entries[0]["id"]
                self.logged += _permitted(entries)
            assert self.logged == self.reads
            assert not strangers, f"listed the access log of a child not theirs: {strangers}"

        def check_entries(self, family: Family, entries: list[Any]) -> None:
            for entry in entries:
                assert set(entry) == ENTRY_FIELDS and entry["childId"] == family.child
                assert "Kid" not in json.dumps(entry) and "Healthy" not in json.dumps(entry)
                # An erased child's log lists its erasure only (the rest is sealed for good).
                assert (entry["outcome"] == "ERASED") == family.erased
                if entry["outcome"] == "ERASED":
                    assert entry["readerUid"] in (*family.guardians, "healthledger")
                if entry["outcome"] == "REFUSED":
                    assert entry["readerUid"] not in family.guardians
                    assert entry["version"] is None

        async def access_logs(
            self, since: dict[str, str]
        ) -> tuple[list[list[Any]], list[tuple[str, str]]]:
            """Each family's access-log entries newer than the entry `since` names, as a
            guardian lists them once the refused reads still gathering are written; and
            (uid, child) for anyone else who could list one."""
            await self.gateway.settle()
            logs = []
            strangers = []
            for family in self.families:
                guardian = people[sorted(family.guardians)[0]]
                seen = since.get(family.child, "")
                found: list[Any] = []
                after = None
                while True:
                    page = await self.gateway.list_access_log(guardian, family.child, 200, after)
                    items = [entry["item"] for entry in page["entries"]]
                    found += [item for item in items if item["id"] > seen]
                    if not page["hasMore"] or items[-1]["id"] <= seen:
                        break
                    after = page["entries"][-1]["position"]
                logs.append(found)
                for uid in EVERYONE:
                    if uid in family.guardians:
                        continue
                    try:
                        await self.gateway.list_access_log(people[uid], family.child)
                    except (NotFoundError, ForbiddenError):
                        continue
                    strangers.append((uid, family.child))
            return logs, strangers

        def teardown(self) -> None:
            try:
                logs, _ = self.await_(self.access_logs(since={}))
                for family, entries in zip(self.families, logs, strict=True):
                    self.check_entries(family, entries)
                assert sum((_permitted(entries) for entries in logs), Counter()) == self.reads
                for name in ("medical", "report"):
                    verification = self.ledger.channel(name).verify()
                    assert verification.ok, verification.reason
                self.ledger.close()
            finally:
                self.loop.close()

    run_state_machine_as_test(
        Story,
        settings=settings(
            max_examples=30,
            stateful_step_count=50,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
