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
    # PENDING, ACTIVE or REVOKED as stored; EXPIRED is shown once validUntil has passed.
    status: str
    createdAt: str
    updatedAt: str
    # None: no end. Agreements signed before agreements could end have none.
    validUntil: NotRequired[str | None]


class AgreementView(TypedDict):
    id: str
    childId: str
    parentUid: str
    doctorUid: str
    status: str
    createdAt: str
    updatedAt: str
    validUntil: str | None


class AgreementInForce(TypedDict):
    """What the index keys of an ACTIVE agreement hold (`active/CHILD/DOCTOR`,
    `doctor-child/DOCTOR/CHILD`), so that an access check needs no second read."""

    agreementId: str
    validUntil: str | None


class EmergencyAccess(TypedDict):
    """A doctor's read-only access to a child's card without an agreement, for a while."""

    id: str
    childId: str
    doctorUid: str
    doctor: str
    reason: str
    openedAt: str
    validUntil: str
    # Set when the doctor or a guardian ends it early; an access that ran out has neither.
    endedAt: str | None
    endedBy: str | None


class EmergencyAccessView(TypedDict):
    id: str
    childId: str
    doctorUid: str
    reason: str
    openedAt: str
    validUntil: str
    endedAt: str | None
    endedBy: str | None


class OpenEmergencyAccess(TypedDict):
    """What `open-emergency/CHILD/DOCTOR` holds while a doctor's emergency access is open."""

    id: str
    validUntil: str


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
    # Only when asked for (cardHistory's withProof): the opening of this version's
    # commitment, None for a version written before records carried commitments.
    opening: NotRequired[RecordOpening | None]


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


class ReportPermission(TypedDict):
    """A school's permission to read a report, as stored: ACTIVE until `validUntil`
    (EXPIRED from then on) unless revoked first (REVOKED)."""

    school: str
    grantedAt: str
    validUntil: str
    revokedAt: str | None


class ReportPermissionView(TypedDict):
    school: str
    grantedAt: str
    validUntil: str
    status: str
    # When it was withdrawn (REVOKED); None otherwise.
    revokedAt: str | None


class Report(TypedDict):
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
    # One entry per school ever permitted, the latest grant.
    permissions: NotRequired[list[ReportPermission]]
    # Instead of permissions, in reports written before permissions carried dates: READY or
    # APPROVED, and the schools permitted (report.py reads them as dated permissions).
    status: NotRequired[str]
    permittedSchools: NotRequired[list[str]]


class ReportView(TypedDict):
    """A report as one caller sees it: its permissions as they concern the caller, the
    content only for those who may read it, the salt only for those who may read the card.

    `status` is APPROVED while `permittedSchools` (the schools whose permission is ACTIVE)
    names any, READY otherwise."""

    id: str
    # The transaction that wrote the version shown (a school: of its own permission).
    txId: str
    childId: str
    reportRequestId: str
    authorUid: str
    createdAt: str
    cardVersion: int
    cardHash: str
    cardSalt: str | None
    content: ReportContent | None
    status: str
    permittedSchools: list[str]
    permissions: list[ReportPermissionView]
    # Only when asked for (withProof), and for guardians and the author only: the opening of
    # the commitment of the version shown, None for one written before commitments existed.
    opening: NotRequired[RecordOpening | None]


# -- both ---------------------------------------------------------------------------------


class RecordOpening(TypedDict):
    """What opens the commitment sealed into one version of a record (encryption/envelope.py):
    the ledger key, the transaction that wrote that version, the value's RFC 8785 text, and
    the salt (64 hex digits) with which SHA-256(salt ‖ text) is the commitment (64 hex)
    that transaction's write-set holds. Given only to those who may read the whole value."""

    key: str
    txId: str
    canonicalText: str
    salt: str
    commitment: str


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


class ConsentEnd(TypedDict):
    """What the index of a consent's end (`consent-ends/VALIDUNTIL/...`) names: an agreement,
    an emergency access or a school's permission to read a report."""

    kind: str
    id: str
    school: NotRequired[str]


class AccessFacts(TypedDict):
    """One read of a child's protected data, as the contract whose rule decided it tells the
    gateway: what was read (MEDICAL_CARD, CARD_HISTORY, REPORT_CONTENT, CHILD), which record
    and version, under which purpose, and the child's guardians (ORG/UID), who are told."""

    childId: str
    what: str
    recordId: str
    version: int | None
    purpose: str
    guardians: list[str]


class AccessEntry(TypedDict):
    """An entry of a child's access log as stored: who read what, when, under which purpose,
    and whether the read was PERMITTED or REFUSED; never anything that was read. The entry
    that records the child's erasure (outcome ERASED, what CHILD) is the one kept in clear."""

    id: str
    at: str
    childId: str
    readerUid: str
    readerOrg: str
    readerRole: str
    what: str
    recordId: str
    version: int | None
    purpose: str
    outcome: str


class AccessEntryView(AccessEntry):
    """An entry as its child's guardians list it, with the block its transaction is in."""

    blockNumber: int


class ErasureFacts(TypedDict):
    """What the gateway gives `recordErasure` (as transient data) once it destroyed the
    child's keys: whose erasure, who were its guardians (ORG/UID), and when (the time the
    key store keeps with the first destroyed key)."""

    childId: str
    guardians: list[str]
    erasedAt: str


class ErasureRecord(TypedDict):
    """What `erased/CHILD` holds, in clear, once a child's records were erased: when, the
    guardians who may still learn that, and who erased them (a guardian as ORG/UID, or
    "healthledger" for the server on an operator's request)."""

    childId: str
    erasedAt: str
    guardians: list[str]
    erasedBy: str


class ErasureReceipt(TypedDict):
    """What an erasure answers: the child, when, and the channels its keys were destroyed on."""

    childId: str
    erasedAt: str
    channels: list[str]


class Audience(TypedDict):
    """An event's payload: its subject and who may be told (people as ORG/UID, organisations)."""

    subjectId: str
    people: list[str]
    orgs: list[str]
    version: NotRequired[int]


class Transient(TypedDict, total=False):
    """Facts the gateway verified on the `medical` channel for a `report` function, and the
    reads it records in an access log, as Fabric's transient data: given to the contract,
    never part of the transaction."""

    # The child as its guardian reads it, for that guardian's application to a school.
    child: ChildGuardians
    # The calling doctor's children under ACTIVE agreements.
    patients: list[str]
    # The card as the calling doctor reads it, and a fresh salt to commit to it.
    card: CardView
    cardSalt: str
    # The doctors (ORG/UID) of the agreements in force for the child a school asks a report
    # of, read on `medical` by the server: the people its ReportRequested event is for.
    doctors: list[str]
    # Reads the gateway handed to the caller, which `recordAccess` records as PERMITTED.
    access: list[AccessFacts]
    # A reader's refused reads of records that exist, which `recordAccess` records as
    # REFUSED; given, empty or not, whenever that reader was refused a read.
    refusals: list[AccessFacts]
    # A child whose keys the gateway destroyed: `recordErasure` records it; the report
    # contract's listAccessLog takes its guardians from it once the child is erased.
    erasure: ErasureFacts
