"""The contracts' records: what they store on the ledger and what they return to callers.

Keys are the names the ledger stores and schema.graphql shows. A stored record
names people as ORG/UID (people.py); its `...View` is what a caller is given,
with bare UIDs where the role implies the organisation, and without the
parties' keys.
"""

from __future__ import annotations

from typing import Generic, NotRequired, TypedDict, TypeVar

# -- medical ------------------------------------------------------------------------------


class Child(TypedDict):
    id: str
    fullName: str
    birthDate: str
    sex: str | None
    guardians: list[str]
    # Children registered before guardianship offers existed have none.
    pendingGuardians: NotRequired[list[str]]
    createdAt: str
    createdBy: str


class ChildView(TypedDict):
    id: str
    fullName: str
    birthDate: str
    sex: str | None
    guardians: list[str]
    pendingGuardians: list[str]
    doctorUid: str | None


class ChildGuardians(TypedDict):
    """What a guardian's application to a school needs of the child: who it is, who decides."""

    id: str
    fullName: str
    guardians: list[str]


class Agreement(TypedDict):
    id: str
    childId: str
    parentUid: str
    doctorUid: str
    parent: str
    doctor: str
    status: str
    createdAt: str
    updatedAt: str


class AgreementView(TypedDict):
    id: str
    childId: str
    parentUid: str
    doctorUid: str
    status: str
    createdAt: str
    updatedAt: str


class Vaccination(TypedDict):
    vaccine: str
    date: str
    dose: int


class Examination(TypedDict):
    date: str
    doctorUid: str
    heightCm: float | None
    weightKg: float | None
    findings: str | None


class MedicalCard(TypedDict):
    childId: str
    version: int
    updatedAt: str
    updatedBy: str
    bloodType: str | None
    allergies: list[str]
    chronicConditions: list[str]
    vaccinations: list[Vaccination]
    examinations: list[Examination]
    healthGroup: int | None
    physicalEducationGroup: str | None
    notes: str | None


class CardView(MedicalCard):
    """The card as its readers get it: with the child's name, which the card does not store."""

    childName: str


class NewExamination(TypedDict):
    """An examination as a patch gives it: without `doctorUid`, the calling doctor's."""

    date: str
    doctorUid: str | None
    heightCm: float | None
    weightKg: float | None
    findings: str | None


class CardPatch(TypedDict, total=False):
    """The card fields a doctor changes; an omitted field stays, a given list replaces the list."""

    bloodType: str | None
    allergies: list[str] | None
    chronicConditions: list[str] | None
    healthGroup: int | None
    notes: str | None
    physicalEducationGroup: str | None
    vaccinations: list[Vaccination]
    examinations: list[NewExamination]


class CardRevision(TypedDict):
    version: int
    txId: str
    blockNumber: int
    author: str
    timestamp: str
    card: MedicalCard


# -- report -------------------------------------------------------------------------------


class AdmissionRequest(TypedDict):
    id: str
    childId: str
    childName: str
    school: str
    status: str
    reason: str | None
    guardians: list[str]
    createdAt: str
    createdBy: str


class AdmissionRequestView(TypedDict):
    id: str
    childId: str
    childName: str
    school: str
    status: str
    reason: str | None
    createdAt: str


class ReportRequest(TypedDict):
    id: str
    admissionRequestId: str
    childId: str
    school: str
    status: str
    reportId: str | None
    guardians: list[str]
    createdAt: str


class ReportRequestView(TypedDict):
    id: str
    admissionRequestId: str
    childId: str
    school: str
    status: str
    reportId: str | None
    createdAt: str


class ReportContent(TypedDict):
    """The part of the card a school may read once permitted, and the doctor's conclusion."""

    childName: str
    healthGroup: int | None
    physicalEducationGroup: str | None
    allergies: list[str]
    chronicConditions: list[str]
    vaccinations: list[Vaccination]
    conclusion: str


class ReportPermissions(TypedDict):
    """Who may read a report's content besides its insiders: READY names no school,
    APPROVED names the schools the guardians permitted."""

    status: str
    permittedSchools: list[str]


class Report(ReportPermissions):
    id: str
    childId: str
    reportRequestId: str
    authorUid: str
    author: str
    createdAt: str
    requestingSchool: str
    guardians: list[str]
    cardVersion: int
    cardHash: str
    cardSalt: str
    content: ReportContent


class ReportView(ReportPermissions):
    """A report as one caller sees it: its permissions as they concern the caller, the
    content only for those who may read it, the salt only for those who may read the card."""

    id: str
    childId: str
    reportRequestId: str
    authorUid: str
    createdAt: str
    cardVersion: int
    cardHash: str
    cardSalt: str | None
    content: ReportContent | None


# -- both ---------------------------------------------------------------------------------

Item = TypeVar("Item")


class PageEntry(TypedDict, Generic[Item]):
    """One item of a list and its position, after which the next page starts."""

    position: str
    item: Item


class Page(TypedDict, Generic[Item]):
    """Up to `first` items of a list, newest first where the list is ordered by time;
    `hasMore` tells whether items follow the last entry's position."""

    entries: list[PageEntry[Item]]
    hasMore: bool


class Audience(TypedDict):
    """An event's payload: its subject and who may be told (people as ORG/UID, organisations)."""

    subjectId: str
    people: list[str]
    orgs: list[str]
    version: NotRequired[int]


class Transient(TypedDict, total=False):
    """Facts the gateway verified on the `medical` channel for a `report` function, as
    Fabric's transient data: given to the contract, never part of the transaction."""

    # The child as its guardian reads it, for that guardian's application to a school.
    child: ChildGuardians
    # The calling doctor's children under ACTIVE agreements.
    patients: list[str]
    # The card as the calling doctor reads it, and a fresh salt to commit to it.
    card: CardView
    cardSalt: str
