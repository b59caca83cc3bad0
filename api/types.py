"""The GraphQL types of schema.graphql, built from the contracts' records (chaincode.records)."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Generic, TypeVar

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from chaincode import records
from checkpoints import signer
from domain.errors import BadInputError, ForbiddenError
from ledger_backends.proofs import Consistency, Inclusion
from ledger_backends.records import parse_timestamp

from .context import context_of
from .fhir_endpoints import naming_at
from .permissions import ReportRecordReaders
from .verified_reads import VerifiedRead, verified_read

Node = TypeVar("Node")


@strawberry.type(description="Where a page of a list ends (Relay's PageInfo).")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Whether more items follow: ask with after: endCursor."
    )
    has_previous_page: bool = strawberry.field(
        description="Always false: lists are paged forward, with first and after."
    )
    start_cursor: str | None = strawberry.field(description="The first edge's cursor.")
    end_cursor: str | None = strawberry.field(
        description="The last edge's cursor, to pass as after; null on an empty page."
    )


@strawberry.type(description="One item of a page and the cursor of its place in the list.")
class Edge(Generic[Node]):
    cursor: str = strawberry.field(
        description="Opaque; valid only for the same list, caller and arguments."
    )
    node: Node


@strawberry.type(
    description=(
        "One page of a list (a Relay connection): at most `first` items, newest first where "
        "the list is ordered by time, and where the next page starts."
    )
)
class Connection(Generic[Node]):
    edges: list[Edge[Node]]
    page_info: PageInfo


@strawberry.enum(
    description=(
        "A user's role, as their certificate says. SERVER is healthledger itself, seen only "
        "in access logs: an erasure an operator made (`healthledger erase`)."
    )
)
class Role(Enum):
    DOCTOR = "doctor"
    PARENT = "parent"
    SCHOOL = "school"
    ADMIN = "admin"
    SERVER = "server"


@strawberry.enum
class PEGroup(Enum):
    MAIN = "MAIN"
    PREPARATORY = "PREPARATORY"
    SPECIAL = "SPECIAL"
    EXEMPT = "EXEMPT"


@strawberry.enum(
    description=(
        "PENDING until the doctor accepts, then ACTIVE; EXPIRED once validUntil has passed "
        "(until a guardian extends it); REVOKED for good."
    )
)
class AgreementStatus(Enum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"


@strawberry.enum(
    description="ACTIVE until validUntil, EXPIRED from then on, REVOKED once withdrawn."
)
class ReportPermissionStatus(Enum):
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"


@strawberry.enum
class AdmissionStatus(Enum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


@strawberry.enum
class ReportRequestStatus(Enum):
    PENDING = "PENDING"
    FULFILLED = "FULFILLED"


@strawberry.enum
class ReportStatus(Enum):
    READY = "READY"
    APPROVED = "APPROVED"


@strawberry.type
class Identity:
    uid: str
    msp: str
    org: str
    role: Role
    name: str | None


@strawberry.type
class Child:
    id: strawberry.ID
    full_name: str
    birth_date: date
    guardians: list[str]
    pending_guardians: list[str] = strawberry.field(
        description="Parents offered guardianship who have not accepted it (guardians only)."
    )
    doctor_uid: str | None
    sex: str | None

    async def _fhir(self, info: Info) -> JSON | None:
        c = context_of(info)
        if c.identity.role != "parent":
            raise ForbiddenError("Only the child's guardians can export its record.")
        # An export reads a child's whole record: a list of children asks one at a time.
        c.fhir_exports += 1
        if c.fhir_exports > 1:
            raise BadInputError("Ask for one child's FHIR record a request.")
        # A parent offered guardianship sees the child too: NOT_FOUND unless a guardian.
        child_id = str(self.id)
        gateway = c.services.gateway
        await gateway.evaluate(c.identity, "medical", "readGuardians", {"childId": child_id})
        naming = naming_at(c.services, c.request)
        return JSON(await c.services.fhir.everything(c.identity, child_id, naming))

    fhir: JSON | None = strawberry.field(
        resolver=_fhir,
        description=(
            "The child's whole record as a FHIR R4 Bundle (searchset), as GET "
            "/fhir/Patient/ID/$everything gives it: for the child's guardians only, one child a "
            "request."
        ),
    )

    @classmethod
    def of(cls, r: records.ChildView) -> Child:
        return cls(
            id=strawberry.ID(r["id"]),
            full_name=r["fullName"],
            birth_date=date.fromisoformat(r["birthDate"]),
            guardians=r["guardians"],
            pending_guardians=r["pendingGuardians"],
            doctor_uid=r["doctorUid"],
            sex=r["sex"],
        )


@strawberry.type
class Vaccination:
    vaccine: str
    date: date
    dose: int

    @classmethod
    def of(cls, r: records.Vaccination) -> Vaccination:
        return cls(vaccine=r["vaccine"], date=date.fromisoformat(r["date"]), dose=r["dose"])


@strawberry.type
class Examination:
    date: date
    doctor_uid: str
    height_cm: float | None
    weight_kg: float | None
    findings: str | None

    @classmethod
    def of(cls, r: records.Examination) -> Examination:
        return cls(
            date=date.fromisoformat(r["date"]),
            doctor_uid=r["doctorUid"],
            height_cm=r["heightCm"],
            weight_kg=r["weightKg"],
            findings=r["findings"],
        )


def _pe_group(value: str | None) -> PEGroup | None:
    return None if value is None else PEGroup(value)


@strawberry.type
class MedicalCard:
    child_id: strawberry.ID
    version: int
    updated_at: datetime
    updated_by: str
    blood_type: str | None
    allergies: list[str]
    chronic_conditions: list[str]
    vaccinations: list[Vaccination]
    examinations: list[Examination]
    health_group: int | None = strawberry.field(description="1..5")
    physical_education_group: PEGroup | None
    notes: str | None

    @classmethod
    def of(cls, r: records.MedicalCard) -> MedicalCard:
        return cls(
            child_id=strawberry.ID(r["childId"]),
            version=r["version"],
            updated_at=parse_timestamp(r["updatedAt"]),
            updated_by=r["updatedBy"],
            blood_type=r["bloodType"],
            allergies=r["allergies"],
            chronic_conditions=r["chronicConditions"],
            vaccinations=[Vaccination.of(v) for v in r["vaccinations"]],
            examinations=[Examination.of(e) for e in r["examinations"]],
            health_group=r["healthGroup"],
            physical_education_group=_pe_group(r["physicalEducationGroup"]),
            notes=r["notes"],
        )


@strawberry.type
class MedicalCardRevision:
    version: int
    tx_id: str
    block_number: int
    author: str
    timestamp: datetime
    card: MedicalCard
    _opening: strawberry.Private[records.RecordOpening | None]
    _read_with_proof: strawberry.Private[bool]

    async def _verified(self, info: Info) -> VerifiedRecord:
        asked = self._read_with_proof
        return await VerifiedRecord.read(info, "medical", self._opening, asked=asked)

    proof: VerifiedRecord = strawberry.field(
        resolver=_verified,
        description=(
            "This version of the card (key card/CHILD-ID) with what checks it against the "
            "log; UNAVAILABLE for a version written before records carried commitments."
        ),
    )

    @classmethod
    def of(cls, r: records.CardRevision) -> MedicalCardRevision:
        return cls(
            version=r["version"],
            tx_id=r["txId"],
            block_number=r["blockNumber"],
            author=r["author"],
            timestamp=parse_timestamp(r["timestamp"]),
            card=MedicalCard.of(r["card"]),
            _opening=r.get("opening"),
            _read_with_proof="opening" in r,
        )


@strawberry.type
class Agreement:
    id: strawberry.ID
    child_id: strawberry.ID
    parent_uid: str
    doctor_uid: str
    status: AgreementStatus
    created_at: datetime
    updated_at: datetime
    valid_until: datetime | None = strawberry.field(
        description="When the agreement ends (null: it has no end); from then on it is EXPIRED."
    )

    @classmethod
    def of(cls, r: records.AgreementView) -> Agreement:
        return cls(
            id=strawberry.ID(r["id"]),
            child_id=strawberry.ID(r["childId"]),
            parent_uid=r["parentUid"],
            doctor_uid=r["doctorUid"],
            status=AgreementStatus(r["status"]),
            created_at=parse_timestamp(r["createdAt"]),
            updated_at=parse_timestamp(r["updatedAt"]),
            valid_until=_moment(r["validUntil"]),
        )


def _moment(timestamp: str | None) -> datetime | None:
    return None if timestamp is None else parse_timestamp(timestamp)


@strawberry.type(
    description=(
        "A doctor's read-only access to a child's medical card and its history without an "
        "agreement, opened with a reason; it ends at validUntil, or earlier when the doctor "
        "or a guardian ends it (endedAt, endedBy)."
    )
)
class EmergencyAccess:
    id: strawberry.ID
    child_id: strawberry.ID
    doctor_uid: str
    reason: str
    opened_at: datetime
    valid_until: datetime
    ended_at: datetime | None
    ended_by: str | None = strawberry.field(description="The UID of whoever ended it early.")

    @classmethod
    def of(cls, r: records.EmergencyAccessView) -> EmergencyAccess:
        return cls(
            id=strawberry.ID(r["id"]),
            child_id=strawberry.ID(r["childId"]),
            doctor_uid=r["doctorUid"],
            reason=r["reason"],
            opened_at=parse_timestamp(r["openedAt"]),
            valid_until=parse_timestamp(r["validUntil"]),
            ended_at=_moment(r["endedAt"]),
            ended_by=r["endedBy"],
        )


@strawberry.type
class AdmissionRequest:
    id: strawberry.ID
    child_id: strawberry.ID
    child_name: str
    school: str
    status: AdmissionStatus
    reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, r: records.AdmissionRequestView) -> AdmissionRequest:
        return cls(
            id=strawberry.ID(r["id"]),
            child_id=strawberry.ID(r["childId"]),
            child_name=r["childName"],
            school=r["school"],
            status=AdmissionStatus(r["status"]),
            reason=r["reason"],
            created_at=parse_timestamp(r["createdAt"]),
        )


@strawberry.type
class ReportRequest:
    id: strawberry.ID
    admission_request_id: strawberry.ID
    child_id: strawberry.ID
    school: str
    status: ReportRequestStatus
    report_id: strawberry.ID | None
    created_at: datetime

    @classmethod
    def of(cls, r: records.ReportRequestView) -> ReportRequest:
        return cls(
            id=strawberry.ID(r["id"]),
            admission_request_id=strawberry.ID(r["admissionRequestId"]),
            child_id=strawberry.ID(r["childId"]),
            school=r["school"],
            status=ReportRequestStatus(r["status"]),
            report_id=None if r["reportId"] is None else strawberry.ID(r["reportId"]),
            created_at=parse_timestamp(r["createdAt"]),
        )


@strawberry.type
class ReportContent:
    child_name: str
    health_group: int | None
    physical_education_group: PEGroup | None
    allergies: list[str]
    chronic_conditions: list[str]
    vaccinations: list[Vaccination]
    conclusion: str

    @classmethod
    def of(cls, r: records.ReportContent) -> ReportContent:
        return cls(
            child_name=r["childName"],
            health_group=r["healthGroup"],
            physical_education_group=_pe_group(r["physicalEducationGroup"]),
            allergies=r["allergies"],
            chronic_conditions=r["chronicConditions"],
            vaccinations=[Vaccination.of(v) for v in r["vaccinations"]],
            conclusion=r["conclusion"],
        )


@strawberry.type(description="A school's permission to read a report's content, and its dates.")
class ReportPermission:
    school: str
    granted_at: datetime
    valid_until: datetime
    status: ReportPermissionStatus
    revoked_at: datetime | None = strawberry.field(
        description="When a guardian withdrew it (REVOKED); null otherwise."
    )

    @classmethod
    def of(cls, r: records.ReportPermissionView) -> ReportPermission:
        revoked_at = r["revokedAt"]
        return cls(
            school=r["school"],
            granted_at=parse_timestamp(r["grantedAt"]),
            valid_until=parse_timestamp(r["validUntil"]),
            status=ReportPermissionStatus(r["status"]),
            revoked_at=None if revoked_at is None else parse_timestamp(revoked_at),
        )


@strawberry.type
class Report:
    id: strawberry.ID
    tx_id: str = strawberry.field(
        description=(
            "The transaction that wrote the version of the report shown: for guardians and "
            "the author its last change; for a school the last change of its own permission "
            "(or the report's making), never another school's. Ask inclusionProof for it."
        )
    )
    child_id: strawberry.ID
    report_request_id: strawberry.ID
    status: ReportStatus
    author_uid: str
    created_at: datetime
    permitted_schools: list[str] = strawberry.field(
        description=(
            "The schools whose permission is ACTIVE, for guardians and the author; a school "
            "sees itself only."
        )
    )
    permissions: list[ReportPermission] = strawberry.field(
        description=(
            "Every school's permission, whatever its status, for guardians and the author; a "
            "school sees its own only."
        )
    )
    card_version: int
    card_hash: str = strawberry.field(
        description=(
            "SHA-256(salt ‖ the card at cardVersion as canonical JSON: sorted keys, no spaces, "
            "without childName, times as YYYY-MM-DDTHH:MM:SS.ffffffZ): a salted commitment "
            "to the card the report was built from."
        )
    )
    card_salt: str | None = strawberry.field(
        description=(
            "The salt (64 hex digits; hashed as its 32 bytes) that opens cardHash; shown to "
            "guardians and the author, who may read the card, null for schools."
        )
    )
    _content: strawberry.Private[records.ReportContent | None]

    def _readable_content(self) -> ReportContent | None:
        if self._content is None:
            raise ForbiddenError(
                "This report's content is readable by a school only once a guardian approves it "
                "for that school."
            )
        return ReportContent.of(self._content)

    content: ReportContent | None = strawberry.field(
        resolver=_readable_content,
        description="Null, with a FORBIDDEN error, for a school not permitted or before APPROVED.",
    )
    _opening: strawberry.Private[records.RecordOpening | None]
    _read_with_proof: strawberry.Private[bool]

    async def _verified(self, info: Info) -> VerifiedRecord:
        asked = self._read_with_proof
        return await VerifiedRecord.read(info, "report", self._opening, asked=asked)

    proof: VerifiedRecord = strawberry.field(
        resolver=_verified,
        permission_classes=[ReportRecordReaders],
        description=(
            "The version shown (txId, key report/REPORT-ID) with what checks it against the "
            "log: for guardians and the author, from report and reports (not from a "
            "mutation's answer); NOT_FOUND for a school, which is shown its own view only."
        ),
    )

    @classmethod
    def of(cls, r: records.ReportView) -> Report:
        return cls(
            id=strawberry.ID(r["id"]),
            tx_id=r["txId"],
            child_id=strawberry.ID(r["childId"]),
            report_request_id=strawberry.ID(r["reportRequestId"]),
            status=ReportStatus(r["status"]),
            author_uid=r["authorUid"],
            created_at=parse_timestamp(r["createdAt"]),
            permitted_schools=r["permittedSchools"],
            permissions=[ReportPermission.of(p) for p in r["permissions"]],
            card_version=r["cardVersion"],
            card_hash=r["cardHash"],
            card_salt=r["cardSalt"],
            _content=r["content"],
            _opening=r.get("opening"),
            _read_with_proof="opening" in r,
        )


@strawberry.type
class Channel:
    name: str
    members: list[str]
    height: int
    tip_hash: str


@strawberry.type(
    description=(
        "A transaction's header. Headers of transactions whose records you cannot read are "
        "redacted: txId, function, creator, creatorMsp and writeSetHash are null."
    )
)
class TxHeader:
    index: int = strawberry.field(description="The transaction's position in its block.")
    redacted: bool
    tx_id: str | None
    contract: str
    function: str | None
    creator: str | None
    creator_msp: str | None
    validation: str
    write_set_hash: str | None = strawberry.field(
        description="A salted commitment to what the transaction wrote; reveals nothing."
    )


@strawberry.type
class Block:
    number: int
    hash: str
    previous_hash: str
    data_hash: str
    timestamp: datetime
    transaction_count: int
    transactions: list[TxHeader]


@strawberry.type(
    description=(
        "A signed tree head of a channel's log (C2SP tlog-checkpoint): keep it, and ask later "
        "for a consistency proof from it to show that the history you saw was not rewritten."
    )
)
class Checkpoint:
    origin: str = strawberry.field(description="The log's name: healthledger/NETWORK-ID/CHANNEL.")
    tree_size: int = strawberry.field(description="Transactions in the tree (its leaves).")
    root_hash: str = strawberry.field(description="The tree's root hash, lower-case hex.")
    note: str = strawberry.field(
        description=(
            "The whole signed note, as GET /checkpoint/CHANNEL serves it: origin, size and "
            "base64 root lines, a blank line, then the signature line, checked with the "
            "log's public key (log/CHANNEL.pub)."
        )
    )

    @classmethod
    def of(cls, signed: signer.Checkpoint) -> Checkpoint:
        return cls(
            origin=signed.origin,
            tree_size=signed.tree_size,
            root_hash=signed.root.hex(),
            note=signed.note,
        )


@strawberry.type(
    description=(
        "That a transaction is leaf leafIndex of the channel's tree of treeSize leaves (RFC "
        "9162): hashing leafHash with hashes, in order, gives checkpoint.rootHash. Hashes "
        "are lower-case hex."
    )
)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: str = strawberry.field(
        description="SHA-256(0x00 ‖ SHA-256(the transaction's canonical text)), hex."
    )
    hashes: list[str] = strawberry.field(description="The audit path, leaf level first.")
    checkpoint: Checkpoint = strawberry.field(
        description="The checkpoint signed for the tree of treeSize leaves."
    )

    @classmethod
    def of(cls, proof: Inclusion, signed: signer.Checkpoint) -> InclusionProof:
        return cls(
            leaf_index=proof.leaf_index,
            tree_size=proof.tree_size,
            leaf_hash=proof.leaf_hash.hex(),
            hashes=[h.hex() for h in proof.hashes],
            checkpoint=Checkpoint.of(signed),
        )


@strawberry.type(
    description=(
        "What a client needs to check a record against the log without trusting the server: "
        "canonicalText is RFC 8785 of the value; SHA-256(salt bytes ‖ UTF-8(canonicalText)) "
        "is commitment; JSON.parse(txHashInputs).write_set[key].sealed.commitment is "
        "commitment; SHA-256(0x00 ‖ SHA-256(UTF-8(txHashInputs))) is inclusion.leafHash; "
        "the inclusion proof leads to the root of inclusion.checkpoint, signed with the log's "
        "key (log/CHANNEL.pub). See docs/transparency.md."
    )
)
class VerifiedRecord:
    key: str = strawberry.field(
        description="The ledger key, e.g. card/CHILD-ID or report/REPORT-ID."
    )
    canonical_text: str = strawberry.field(
        description="The RFC 8785 text of the record's value as that transaction wrote it."
    )
    salt: str = strawberry.field(description="The commitment's salt: 64 hex digits (32 bytes).")
    commitment: str = strawberry.field(
        description="64 hex digits: SHA-256(the salt's bytes ‖ UTF-8(canonicalText))."
    )
    tx_hash_inputs: str = strawberry.field(
        description=(
            "The canonical text of the transaction that wrote the version, exactly as stored "
            "and hashed into its leaf."
        )
    )
    inclusion: InclusionProof = strawberry.field(
        description=(
            "That transaction's inclusion in the channel's current tree, with the checkpoint "
            "signed for it."
        )
    )

    @classmethod
    def of(cls, read: VerifiedRead) -> VerifiedRecord:
        return cls(
            key=read.opening["key"],
            canonical_text=read.opening["canonicalText"],
            salt=read.opening["salt"],
            commitment=read.opening["commitment"],
            tx_hash_inputs=read.tx_text,
            inclusion=InclusionProof.of(read.inclusion.proof, read.inclusion.checkpoint),
        )

    @classmethod
    async def read(
        cls, info: Info, channel: str, opening: records.RecordOpening | None, *, asked: bool
    ) -> VerifiedRecord:
        """The `proof` of a version read on `channel` (see api/verified_reads.py)."""
        context = context_of(info)
        found = await verified_read(
            context.services, channel, opening, context.identity, asked=asked
        )
        return cls.of(found)


@strawberry.type(
    description=(
        "That the channel's tree of toSize leaves extends its tree of fromSize leaves (RFC "
        "9162): a checkpoint kept at fromSize, and this one, are of the same history. Hashes "
        "are lower-case hex."
    )
)
class ConsistencyProof:
    from_size: int
    to_size: int
    from_root: str
    to_root: str
    hashes: list[str] = strawberry.field(description="The consistency proof's hashes, in order.")
    checkpoint: Checkpoint = strawberry.field(
        description="The checkpoint signed for the tree of toSize leaves."
    )

    @classmethod
    def of(cls, proof: Consistency, signed: signer.Checkpoint) -> ConsistencyProof:
        return cls(
            from_size=proof.from_size,
            to_size=proof.to_size,
            from_root=proof.from_root.hex(),
            to_root=proof.to_root.hex(),
            hashes=[h.hex() for h in proof.hashes],
            checkpoint=Checkpoint.of(signed),
        )


@strawberry.type
class Verification:
    channel: str
    ok: bool
    height: int
    first_bad_block: int | None
    reason: str | None


@strawberry.enum(description="What of a child's protected data an access-log entry is about.")
class AccessObject(Enum):
    MEDICAL_CARD = "MEDICAL_CARD"
    CARD_HISTORY = "CARD_HISTORY"
    REPORT_CONTENT = "REPORT_CONTENT"
    CHILD = "CHILD"


@strawberry.enum(
    description=(
        "The purpose a read was granted under: GUARDIAN (a guardian), TREATMENT (the doctor "
        "of an agreement in force; a report's author), SCHOOL_ADMISSION (a school a report is "
        "permitted to), EMERGENCY (an open emergency access), ADMINISTRATION. A REFUSED "
        "entry names the purpose the reader's role reads under."
    )
)
class AccessPurpose(Enum):
    GUARDIAN = "GUARDIAN"
    TREATMENT = "TREATMENT"
    SCHOOL_ADMISSION = "SCHOOL_ADMISSION"
    EMERGENCY = "EMERGENCY"
    ADMINISTRATION = "ADMINISTRATION"


@strawberry.enum(
    description=(
        "PERMITTED: the read was granted; REFUSED: it was not; ERASED: the child's records "
        "were erased (what CHILD, recordId the child's id)."
    )
)
class AccessOutcome(Enum):
    PERMITTED = "PERMITTED"
    REFUSED = "REFUSED"
    ERASED = "ERASED"


@strawberry.type(
    description=(
        "One read of a child's protected data, one refused attempt, or the erasure of the "
        "child's records: who, when, what and why; never what was read."
    )
)
class AccessEntry:
    id: strawberry.ID
    at: datetime
    child_id: strawberry.ID
    reader_uid: str
    reader_org: str
    reader_role: Role
    what: AccessObject
    record_id: strawberry.ID = strawberry.field(
        description="The child's id (CHILD, MEDICAL_CARD, CARD_HISTORY) or the report's."
    )
    version: int | None = strawberry.field(
        description=(
            "The card version read (MEDICAL_CARD; CARD_HISTORY: the newest); null for a child, "
            "a report's content and refused reads."
        )
    )
    purpose: AccessPurpose
    outcome: AccessOutcome
    block_number: int = strawberry.field(
        description="The block holding the transaction that recorded the entry."
    )

    @classmethod
    def of(cls, r: records.AccessEntryView) -> AccessEntry:
        return cls(
            id=strawberry.ID(r["id"]),
            at=parse_timestamp(r["at"]),
            child_id=strawberry.ID(r["childId"]),
            reader_uid=r["readerUid"],
            reader_org=r["readerOrg"],
            reader_role=Role(r["readerRole"]),
            what=AccessObject(r["what"]),
            record_id=strawberry.ID(r["recordId"]),
            version=r["version"],
            purpose=AccessPurpose(r["purpose"]),
            outcome=AccessOutcome(r["outcome"]),
            block_number=r["blockNumber"],
        )


@strawberry.type(
    description=(
        "An erasure done: the child's data keys are destroyed on every channel named, and the "
        "erasure is recorded there."
    )
)
class ErasureReceipt:
    child_id: strawberry.ID
    erased_at: datetime
    channels: list[str]

    @classmethod
    def of(cls, r: records.ErasureReceipt) -> ErasureReceipt:
        return cls(
            child_id=strawberry.ID(r["childId"]),
            erased_at=parse_timestamp(r["erasedAt"]),
            channels=list(r["channels"]),
        )


@strawberry.type
class LedgerEvent:
    channel: str
    name: str
    block_number: int
    tx_id: str
    subject_id: strawberry.ID


@strawberry.input
class RegisterChildInput:
    full_name: str
    birth_date: date
    sex: str | None = None
    other_guardians: list[str] | None = strawberry.field(
        default=None, description="UIDs of other parents (organisation parents)."
    )


@strawberry.input
class VaccinationInput:
    vaccine: str
    date: date
    dose: int


@strawberry.input
class ExaminationInput:
    date: date
    doctor_uid: str | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    findings: str | None = None


@strawberry.input(description="Omitted field = unchanged; a given list replaces the list.")
class MedicalCardPatch:
    blood_type: str | None = strawberry.UNSET
    allergies: list[str] | None = strawberry.UNSET
    chronic_conditions: list[str] | None = strawberry.UNSET
    vaccinations: list[VaccinationInput] | None = strawberry.UNSET
    examinations: list[ExaminationInput] | None = strawberry.UNSET
    health_group: int | None = strawberry.UNSET
    physical_education_group: PEGroup | None = strawberry.UNSET
    notes: str | None = strawberry.UNSET

    def to_record(self) -> records.CardPatch:
        """The given fields only, in the contract's names; explicit nulls clear a field."""
        given: records.CardPatch = {}
        if self.blood_type is not strawberry.UNSET:
            given["bloodType"] = self.blood_type
        if self.allergies is not strawberry.UNSET:
            given["allergies"] = self.allergies
        if self.chronic_conditions is not strawberry.UNSET:
            given["chronicConditions"] = self.chronic_conditions
        if self.health_group is not strawberry.UNSET:
            given["healthGroup"] = self.health_group
        if self.notes is not strawberry.UNSET:
            given["notes"] = self.notes
        if self.physical_education_group is not strawberry.UNSET:
            group = self.physical_education_group
            given["physicalEducationGroup"] = None if group is None else group.value
        if self.vaccinations is not strawberry.UNSET:
            given["vaccinations"] = [
                {"vaccine": v.vaccine, "date": v.date.isoformat(), "dose": v.dose}
                for v in self.vaccinations or []
            ]
        if self.examinations is not strawberry.UNSET:
            given["examinations"] = [
                {
                    "date": e.date.isoformat(),
                    "doctorUid": e.doctor_uid,
                    "heightCm": e.height_cm,
                    "weightKg": e.weight_kg,
                    "findings": e.findings,
                }
                for e in self.examinations or []
            ]
        return given
