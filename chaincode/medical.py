"""The `medical` contract (channel `medical`): children, agreements and medical cards.

Who may do what: a child, its card and the card's history are read by
the child's guardians and by the doctor of an ACTIVE agreement in force; only that
doctor updates the card. An agreement is read by its parent and its doctor;
guardians sign, extend and revoke, the named doctor accepts. An agreement may
have an end (`validUntil`): from then on it is EXPIRED and gives its doctor
nothing, until a guardian extends it (consent.py). Any hospital doctor may open
an emergency access to a child, giving a reason: it lets them read the card and
its history, never update it, for `emergency_minutes`, unless that doctor or a
guardian ends it first; the guardians are told at once, and they and the
hospital's administrators list them. Anyone else is told the object does not
exist (NOT_FOUND), so nothing leaks about other families.

A parent who registers a child is its guardian; the other parents named then
are offered guardianship and become guardians only by accepting it
(`acceptGuardianship`). Until then the child is invisible to them but for its
name in `pendingGuardianships`. People are (organisation, UID) pairs
(`people.py`): guardians, agreement parties, index keys and event audiences.

Every value stored for a child is sealed with the child's key (`put_state(...,
child=)`). A guardian may have the child's records erased (erasure.py): its
keys are destroyed, and everything stored for it reads as absent from then on.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from domain.consent import EMERGENCY_MINUTES
from domain.errors import BadInputError, ConflictError, ForbiddenError, NotFoundError

from . import access_log, consent, erasure, paging
from . import validation as check
from .base import Contract, TxContext, query, transaction
from .consent import in_force
from .paging import DEFAULT_FIRST
from .people import person, person_of, uid_of, uids_of
from .records import (
    AccessEntryView,
    AccessFacts,
    Agreement,
    AgreementInForce,
    AgreementView,
    Audience,
    CardRevision,
    CardView,
    Child,
    ChildGuardians,
    ChildView,
    ConsentEnd,
    EmergencyAccess,
    EmergencyAccessView,
    ErasureRecord,
    Examination,
    MedicalCard,
    OpenEmergencyAccess,
    Page,
    Vaccination,
)
from .writes import written_ids

BLOOD_TYPES = ("O+", "O-", "A+", "A-", "B+", "B-", "AB+", "AB-")
PE_GROUPS = ("MAIN", "PREPARATORY", "SPECIAL", "EXEMPT")
MAX_GUARDIANS = 4
# What reading a card answers when the child has none: no refusal of the reader.
NO_CARD = "The child has no medical card."
# An emergency access says why in a sentence, not a word.
EMERGENCY_REASON_MIN = 20
EMERGENCY_REASON_MAX = 1_000
CARD_FIELDS = (
    "bloodType",
    "allergies",
    "chronicConditions",
    "vaccinations",
    "examinations",
    "healthGroup",
    "physicalEducationGroup",
    "notes",
)


class MedicalContract(access_log.RecordsAccess, erasure.RecordsErasure, Contract):
    name = "medical"
    channel = "medical"

    def __init__(self, *, emergency_minutes: int = EMERGENCY_MINUTES) -> None:
        super().__init__()
        self.emergency_minutes = emergency_minutes

    # -- children ------------------------------------------------------------------

    @transaction("registerChild")
    def register_child(
        self,
        ctx: TxContext,
        fullName: str,
        birthDate: str,
        sex: str | None = None,
        otherGuardians: list[str] | None = None,
    ) -> ChildView:
        """A parent registers a child, becoming its guardian; the card starts empty at version 1.

        The other parents named are offered guardianship; each becomes a guardian by
        accepting it. A UID that is not an enrolled parent is offered it all the same (no
        one can accept it), so the answer never tells which UIDs are enrolled parents.
        """
        _require_role(ctx, "parent", "Only parents register children.")
        full_name = check.text(fullName, "fullName")
        birth_date = check.past_date(birthDate, "birthDate", today=_today(ctx))
        sex_value = check.optional_text(sex, "sex", max_length=20)
        others = check.uid_list(otherGuardians or [], "otherGuardians", max_items=MAX_GUARDIANS - 1)
        if ctx.caller.uid in others:
            raise BadInputError("otherGuardians names the parents besides you.")
        # Schools see child ids but not when a child was registered: no time in this id.
        child_id = ctx.new_id("child", in_time_order=False)
        guardian = person_of(ctx.caller)
        offered = [_parent_named(ctx, uid) for uid in others]
        child: Child = {
            "id": child_id,
            "fullName": full_name,
            "birthDate": birth_date,
            "sex": sex_value,
            "guardians": [guardian],
            "pendingGuardians": offered,
            "createdAt": ctx.timestamp,
            "createdBy": guardian,
        }
        ctx.put_state(f"child/{child_id}", child, child=child_id)
        ctx.put_state(f"card/{child_id}", _empty_card(ctx, child_id), child=child_id)
        ctx.put_state(f"guardian-child/{guardian}/{child_id}", child_id, child=child_id)
        for invitee in offered:
            ctx.put_state(f"pending-guardian/{invitee}/{child_id}", child_id, child=child_id)
        ctx.set_event("ChildRegistered", _audience(child_id, [guardian]))
        if offered:
            ctx.set_event("GuardianshipOffered", _audience(child_id, offered))
        return _child_view(ctx, child, doctor_uid=None)

    @transaction("acceptGuardianship")
    def accept_guardianship(self, ctx: TxContext, childId: str) -> ChildView:
        """A parent offered guardianship of a child accepts it and becomes a guardian."""
        child = _offered_child(ctx, childId)
        me = person_of(ctx.caller)
        child = {
            **child,
            "guardians": [*child["guardians"], me],
            "pendingGuardians": [p for p in child.get("pendingGuardians", []) if p != me],
        }
        ctx.put_state(f"child/{child['id']}", child, child=child["id"])
        ctx.del_state(f"pending-guardian/{me}/{child['id']}")
        ctx.put_state(f"guardian-child/{me}/{child['id']}", child["id"], child=child["id"])
        ctx.set_event("GuardianshipAccepted", _audience(child["id"], child["guardians"]))
        return _child_view(ctx, child, doctor_uid=_current_doctor(ctx, child["id"]))

    @query("pendingGuardianships")
    def pending_guardianships(self, ctx: TxContext) -> list[ChildView]:
        """The children a parent is offered guardianship of, as `_offered_view` shows them."""
        if ctx.caller.role != "parent":
            return []
        me = person_of(ctx.caller)
        ids = [value for _, value in ctx.get_prefix(f"pending-guardian/{me}/") if value is not None]
        children: list[Child | None] = [ctx.get_state(f"child/{child_id}") for child_id in ids]
        return [
            _offered_view(child)
            for child in children
            if child is not None and me in child.get("pendingGuardians", [])
        ]

    @query("readChild")
    def read_child(self, ctx: TxContext, childId: str) -> ChildView:
        child, purpose = _readable_child(ctx, childId, "CHILD")
        ctx.read_granted(_read_of(child, "CHILD", version=None, purpose=purpose))
        return _child_view(ctx, child, doctor_uid=_current_doctor(ctx, child["id"]))

    @query("readGuardians")
    def read_guardians(self, ctx: TxContext, childId: str) -> ChildGuardians:
        """For a guardian: the child's id, name and guardians (ORG/UID), which the gateway
        hands the report contract when the guardian applies to a school."""
        child = _visible_child(ctx, childId)
        if not _is_guardian(ctx, child):
            raise NotFoundError("No such child is visible to you.")
        return {"id": child["id"], "fullName": child["fullName"], "guardians": child["guardians"]}

    @query("listChildren")
    def list_children(
        self, ctx: TxContext, first: int = DEFAULT_FIRST, after: str | None = None
    ) -> Page[ChildView]:
        """A parent's own children; a doctor's children under ACTIVE agreements; in id
        order, which is no time order (child ids carry no time). Each child listed is a
        read of it (CHILD)."""
        if ctx.caller.role == "parent":
            prefixes = [f"guardian-child/{person_of(ctx.caller)}/"]
        elif ctx.caller.role == "doctor":
            prefixes = [f"doctor-child/{person_of(ctx.caller)}/"]
        else:
            prefixes = []

        reads: dict[str, AccessFacts] = {}

        def load(child_id: str) -> ChildView | None:
            child: Child | None = ctx.get_state(f"child/{child_id}")
            if child is None or (ctx.caller.role == "doctor" and not _treats(ctx, child_id)):
                return None
            purpose = card_purpose(ctx, child)
            if purpose is None:
                return None
            reads[child_id] = _read_of(child, "CHILD", version=None, purpose=purpose)
            return _child_view(ctx, child, doctor_uid=_current_doctor(ctx, child["id"]))

        found = paging.newest_first(ctx, prefixes, first=first, after=after, load=load)
        # The page's children only: one more is loaded to tell whether more follow.
        for entry in found["entries"]:
            ctx.read_granted(reads[entry["item"]["id"]])
        return found

    @query("listPatientIds")
    def list_patient_ids(self, ctx: TxContext) -> list[str]:
        """The ids of a doctor's children under ACTIVE agreements (one range read); [] for others.

        What the gateway hands the report contract as the doctor's patients: listChildren
        would also read every child, which made each report cost O(patients) reads.
        """
        return _patient_ids(ctx) if ctx.caller.role == "doctor" else []

    @query("isPatient")
    def is_patient(self, ctx: TxContext, childId: str) -> bool:
        """Whether the calling doctor has an ACTIVE agreement for the child in force now (one
        point read); False for everyone else and for a child that is not there.

        What the gateway proves a doctor's access to one report request with: its cost does
        not grow with the doctor's patients, as listPatientIds' does.
        """
        return _treats(ctx, childId)

    # -- agreements ------------------------------------------------------------------

    @transaction("signAgreement")
    def sign_agreement(
        self, ctx: TxContext, childId: str, doctorUid: str, validUntil: str | None = None
    ) -> AgreementView:
        """A guardian names a hospital doctor for the child: a PENDING agreement, in force
        until `validUntil` (a time to come) if given."""
        child = _visible_child(ctx, childId)
        if not _is_guardian(ctx, child):
            raise ForbiddenError("Only the child's guardians sign agreements.")
        doctor = _enrolled(ctx, doctorUid, org_kind="hospital", role="doctor")
        if doctor is None:
            raise BadInputError("doctorUid must name an enrolled hospital doctor.")
        until = None if validUntil is None else consent.valid_until(ctx, validUntil)
        open_key = f"open-agreement/{child['id']}/{doctor}"
        if ctx.get_state(open_key) is not None:
            raise ConflictError(
                "This doctor already has a pending, active or expired agreement for the child: "
                "extend or revoke that one."
            )
        agreement_id = ctx.new_id("agreement")
        agreement: Agreement = {
            "id": agreement_id,
            "childId": child["id"],
            "parentUid": ctx.caller.uid,
            "doctorUid": doctorUid,
            "parent": person_of(ctx.caller),
            "doctor": doctor,
            "status": "PENDING",
            "createdAt": ctx.timestamp,
            "updatedAt": ctx.timestamp,
            "validUntil": until,
        }
        child_id = child["id"]
        ctx.put_state(f"agreement/{agreement_id}", agreement, child=child_id)
        ctx.put_state(open_key, agreement_id, child=child_id)
        ctx.put_state(f"child-agreement/{child_id}/{agreement_id}", agreement_id, child=child_id)
        ctx.put_state(f"doctor-agreement/{doctor}/{agreement_id}", agreement_id, child=child_id)
        consent.index_end(ctx, _agreement_end(agreement_id), until, child=child_id)
        ctx.set_event("AgreementSigned", _audience(agreement_id, [*child["guardians"], doctor]))
        return _agreement_view(ctx, agreement)

    @transaction("acceptAgreement")
    def accept_agreement(self, ctx: TxContext, id: str) -> AgreementView:
        """The doctor named in a PENDING agreement accepts it: ACTIVE, card access begins."""
        agreement, child = _visible_agreement(ctx, id)
        if not _is_named_doctor(ctx, agreement):
            raise ForbiddenError("Only the doctor named in the agreement can accept it.")
        status = _agreement_status(ctx, agreement)
        if status != "PENDING":
            raise ConflictError(f"The agreement is {status}; only a PENDING one is accepted.")
        agreement = {**agreement, "status": "ACTIVE", "updatedAt": ctx.timestamp}
        ctx.put_state(f"agreement/{id}", agreement, child=agreement["childId"])
        _index_in_force(ctx, agreement)
        ctx.set_event(
            "AgreementAccepted", _audience(id, [*child["guardians"], agreement["doctor"]])
        )
        return _agreement_view(ctx, agreement)

    @transaction("extendAgreement")
    def extend_agreement(self, ctx: TxContext, id: str, validUntil: str) -> AgreementView:
        """A guardian gives a pending, active or expired agreement a new end, `validUntil` (a
        time to come, earlier or later than the old one): an expired agreement is in force
        again, and so is its doctor's access if it was accepted."""
        agreement, child = _visible_agreement(ctx, id)
        if not _is_guardian(ctx, child):
            raise ForbiddenError("Only the child's guardians extend agreements.")
        if agreement["status"] == "REVOKED":
            raise ConflictError("The agreement is revoked; sign a new one instead.")
        until = consent.valid_until(ctx, validUntil)
        consent.forget_end(ctx, _agreement_end(id), agreement.get("validUntil"))
        consent.index_end(ctx, _agreement_end(id), until, child=agreement["childId"])
        agreement = {**agreement, "validUntil": until, "updatedAt": ctx.timestamp}
        ctx.put_state(f"agreement/{id}", agreement, child=agreement["childId"])
        if agreement["status"] == "ACTIVE":
            _index_in_force(ctx, agreement)
        ctx.set_event(
            "AgreementExtended", _audience(id, [*child["guardians"], agreement["doctor"]])
        )
        return _agreement_view(ctx, agreement)

    @transaction("revokeAgreement")
    def revoke_agreement(self, ctx: TxContext, id: str) -> AgreementView:
        """A guardian ends an agreement: REVOKED, and the doctor's access ends with this block.

        The doctor is told the agreement ended (AgreementEnded) unless its expiry was
        announced already."""
        agreement, child = _visible_agreement(ctx, id)
        if not _is_guardian(ctx, child):
            raise ForbiddenError("Only the child's guardians revoke agreements.")
        if agreement["status"] == "REVOKED":
            raise ConflictError("The agreement is already revoked.")
        valid_until = agreement.get("validUntil")
        untold = consent.forget_end(ctx, _agreement_end(id), valid_until) or valid_until is None
        agreement = {**agreement, "status": "REVOKED", "updatedAt": ctx.timestamp}
        ctx.put_state(f"agreement/{id}", agreement, child=agreement["childId"])
        ctx.del_state(f"open-agreement/{agreement['childId']}/{agreement['doctor']}")
        _unindex_in_force(ctx, agreement)
        audience = _audience(id, [*child["guardians"], agreement["doctor"]])
        ctx.set_event("AgreementRevoked", audience)
        if untold:
            ctx.set_event("AgreementEnded", audience)
        return _agreement_view(ctx, agreement)

    @query("listAgreements")
    def list_agreements(
        self,
        ctx: TxContext,
        childId: str | None = None,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
    ) -> Page[AgreementView]:
        """A parent: agreements of their children; a doctor: agreements naming them; newest
        first. A parent's children's lists are merged: O(children * first) reads; a doctor
        asking for one child's reads that child's list, which is shorter than their own."""
        if ctx.caller.role == "parent":
            if childId is not None:
                child = _stored_child(ctx, childId)
                ids = [child["id"]] if child is not None and _is_guardian(ctx, child) else []
            else:
                own = ctx.get_prefix(f"guardian-child/{person_of(ctx.caller)}/")
                ids = [child_id for _, child_id in own if child_id is not None]
            prefixes = [f"child-agreement/{child_id}/" for child_id in ids]
        elif ctx.caller.role == "doctor":
            mine = f"doctor-agreement/{person_of(ctx.caller)}/"
            prefixes = [mine if childId is None else f"child-agreement/{childId}/"]
        else:
            prefixes = []

        def load(agreement_id: str) -> AgreementView | None:
            agreement: Agreement | None = ctx.get_state(f"agreement/{agreement_id}")
            if agreement is None or childId not in (None, agreement["childId"]):
                return None
            if ctx.caller.role == "doctor" and not _is_named_doctor(ctx, agreement):
                return None
            return _agreement_view(ctx, agreement)

        return paging.newest_first(ctx, prefixes, first=first, after=after, load=load)

    # -- the medical card ------------------------------------------------------------

    @query("readCard")
    def read_card(self, ctx: TxContext, childId: str) -> CardView:
        child, purpose = _readable_child(ctx, childId, "MEDICAL_CARD")
        card: MedicalCard | None = ctx.get_state(f"card/{child['id']}")
        if card is None:
            raise NotFoundError(NO_CARD)
        ctx.read_granted(_read_of(child, "MEDICAL_CARD", version=card["version"], purpose=purpose))
        return {**card, "childName": child["fullName"]}

    @transaction("updateMedicalCard")
    def update_medical_card(
        self, ctx: TxContext, childId: str, expectedVersion: int, patch: dict[str, Any]
    ) -> CardView:
        """The doctor of an ACTIVE agreement changes the card; a stale version is a CONFLICT.

        `patch` is checked here: it is shaped like records.CardPatch when the API sends it.
        """
        child = _visible_child(ctx, childId)
        if not _treats(ctx, child["id"]):
            raise ForbiddenError("Only a doctor with an active agreement updates the medical card.")
        check.integer(expectedVersion, "expectedVersion", low=1, high=2**31 - 1)
        recorded: MedicalCard | None = ctx.get_state(f"card/{child['id']}")
        if recorded is None:
            raise NotFoundError(NO_CARD)
        card = _patched(ctx, recorded, check.mapping(patch, "patch"))
        if recorded["version"] != expectedVersion:
            raise ConflictError(
                f"The card is at version {recorded['version']}, not {expectedVersion}: "
                "it changed since you read it. Reload it and apply your change again."
            )
        card["version"] = recorded["version"] + 1
        card["updatedAt"] = ctx.timestamp
        card["updatedBy"] = ctx.caller.uid
        ctx.put_state(f"card/{child['id']}", card, child=child["id"])
        ctx.set_event(
            "CardUpdated",
            _audience(
                child["id"], [*child["guardians"], person_of(ctx.caller)], version=card["version"]
            ),
        )
        return {**card, "childName": child["fullName"]}

    @query("cardHistory")
    def card_history(
        self,
        ctx: TxContext,
        childId: str,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
        withProof: bool = False,
    ) -> Page[CardRevision]:
        """Every version of the card with the transaction, block, author and time that made
        it, newest first; a position is a version number. `withProof`: each with the
        opening of its commitment (`opening`), for a verified read of the version by the
        same readers; the read noted is the same.

        The card's history is read whole and the page sliced from it: the backends keep a
        key's history as one list, read at once. The read is of the history up to the card's
        current version, whichever page is asked for.
        """
        size = paging.page_size(first)
        below = _version_position(after)
        child, purpose = _readable_child(ctx, childId, "CARD_HISTORY")
        key = f"card/{child['id']}"
        history = ctx.get_history(key)
        # The card is never deleted: its last write is its current version.
        current = history[-1].json()["version"] if history else None
        ctx.read_granted(_read_of(child, "CARD_HISTORY", version=current, purpose=purpose))
        revisions: list[CardRevision] = [
            {
                "version": card["version"],
                "txId": entry.tx_id,
                "blockNumber": entry.block_number,
                "author": entry.creator_uid,
                "timestamp": entry.timestamp,
                "card": card,
            }
            for entry in reversed(history)
            if (card := entry.json()) is not None and (below is None or card["version"] < below)
        ]
        if withProof:
            for revision in revisions[:size]:
                revision["opening"] = ctx.opening_of(key, revision["txId"])
        return {
            "entries": [{"position": str(r["version"]), "item": r} for r in revisions[:size]],
            "hasMore": len(revisions) > size,
        }

    @query("writtenRecordPurpose")
    def written_record_purpose(self, ctx: TxContext, keys: list[str]) -> str:
        """Whether the caller may, now, read a medical card a transaction wrote, given the
        keys it wrote: the purpose `card_purpose` grants (who may read the card's history),
        NOT_FOUND when it wrote no card the caller may read. What an inclusion proof of the
        transaction is shown under (api/proofs.py); no read is noted, as nothing of the
        card is returned."""
        if ctx.caller.role in ("parent", "doctor"):
            for child_id in written_ids(keys, "card"):
                child = _stored_child(ctx, child_id)
                purpose = None if child is None else card_purpose(ctx, child)
                if purpose is not None:
                    return purpose
        raise NotFoundError("No such child is visible to you.")

    # -- the access log ----------------------------------------------------------------

    @query("listAccessLog")
    def list_access_log(
        self,
        ctx: TxContext,
        childId: str,
        first: int = DEFAULT_FIRST,
        after: str | None = None,
    ) -> Page[AccessEntryView]:
        """For the child's guardians: who read the child, its card and the card's history,
        and who was refused, newest first. Once the child is erased, its guardians still
        list what is left in clear: the entry of the erasure."""
        child = _stored_child(ctx, childId)
        if child is not None and _is_guardian(ctx, child):
            return access_log.page(ctx, child["id"], first, after)
        erased = erasure.erasure_of(ctx, childId) if child is None else None
        if erased is None or not erasure.names_caller(ctx, erased):
            raise NotFoundError("No such child is visible to you.")
        return access_log.page(ctx, erased["childId"], first, after)

    # -- erasure ---------------------------------------------------------------------------

    @query("readErasure")
    def read_erasure(self, ctx: TxContext, childId: str) -> ErasureRecord:
        """For a guardian named in it (and the server): when the child's records were
        erased; NOT_FOUND as for a missing child otherwise (erasure.py)."""
        return erasure.read(ctx, childId)

    @query("childGuardians")
    def child_guardians(self, ctx: TxContext, childId: str) -> ChildGuardians | None:
        """For the server, erasing a child on an operator's request: who the child is and its
        guardians; None when the child cannot be read (never registered, or erased)."""
        consent.require_server(ctx)
        child = _stored_child(ctx, childId)
        if child is None:
            return None
        return {"id": child["id"], "fullName": child["fullName"], "guardians": child["guardians"]}

    @query("indexedGuardians")
    def indexed_guardians(self, ctx: TxContext, childId: str) -> list[str]:
        """For the server: the guardians the index names for the child, also once its
        records are unreadable (erasure.indexed_guardians)."""
        consent.require_server(ctx)
        return erasure.indexed_guardians(ctx, childId)

    # -- emergency access ------------------------------------------------------------------

    @transaction("openEmergencyAccess")
    def open_emergency_access(
        self, ctx: TxContext, childId: str, reason: str
    ) -> EmergencyAccessView:
        """A hospital doctor, with or without an agreement, may read the child's card and its
        history for `emergency_minutes`, saying why; the guardians are told at once."""
        if ctx.caller.role != "doctor" or ctx.directory.org_kind(ctx.caller.org) != "hospital":
            raise ForbiddenError("Only hospital doctors open emergency access.")
        why = check.free_text(reason, "reason", max_length=EMERGENCY_REASON_MAX)
        if len(why) < EMERGENCY_REASON_MIN:
            raise BadInputError(
                f"reason must say why in at least {EMERGENCY_REASON_MIN} characters."
            )
        child = _stored_child(ctx, childId)
        if child is None:
            raise NotFoundError("No such child is visible to you.")
        doctor = person_of(ctx.caller)
        open_key = f"open-emergency/{child['id']}/{doctor}"
        current: OpenEmergencyAccess | None = ctx.get_state(open_key)
        if current is not None and in_force(ctx, current["validUntil"]):
            raise ConflictError(
                f"Your emergency access to this child is open until {current['validUntil']}."
            )
        access_id = ctx.new_id("emergency")
        until = consent.after(ctx.timestamp, minutes=self.emergency_minutes)
        access: EmergencyAccess = {
            "id": access_id,
            "childId": child["id"],
            "doctorUid": ctx.caller.uid,
            "doctor": doctor,
            "reason": why,
            "openedAt": ctx.timestamp,
            "validUntil": until,
            "endedAt": None,
            "endedBy": None,
        }
        child_id = child["id"]
        ctx.put_state(f"emergency/{access_id}", access, child=child_id)
        ctx.put_state(f"child-emergency/{child_id}/{access_id}", access_id, child=child_id)
        opened: OpenEmergencyAccess = {"id": access_id, "validUntil": until}
        ctx.put_state(open_key, opened, child=child_id)
        consent.index_end(ctx, _emergency_end(access_id), until, child=child_id)
        ctx.set_event("EmergencyAccessOpened", _audience(access_id, child["guardians"]))
        return _emergency_view(access)

    @transaction("endEmergencyAccess")
    def end_emergency_access(self, ctx: TxContext, id: str) -> EmergencyAccessView:
        """The doctor who opened an emergency access, or a guardian, ends it before its time."""
        access, child = _visible_emergency(ctx, id)
        me = person_of(ctx.caller)
        if not (
            _is_guardian(ctx, child) or (ctx.caller.role == "doctor" and me == access["doctor"])
        ):
            raise ForbiddenError(
                "Only the doctor who opened it or the child's guardians end an emergency access."
            )
        if access["endedAt"] is not None:
            raise ConflictError("The emergency access was already ended.")
        if not in_force(ctx, access["validUntil"]):
            raise ConflictError("The emergency access already ran out.")
        access = {**access, "endedAt": ctx.timestamp, "endedBy": me}
        ctx.put_state(f"emergency/{access['id']}", access, child=access["childId"])
        _close_emergency(ctx, access)
        consent.forget_end(ctx, _emergency_end(access["id"]), access["validUntil"])
        ctx.set_event(
            "EmergencyAccessEnded", _audience(access["id"], [*child["guardians"], access["doctor"]])
        )
        return _emergency_view(access)

    @query("listEmergencyAccesses")
    def list_emergency_accesses(self, ctx: TxContext, childId: str) -> list[EmergencyAccessView]:
        """Every emergency access to the child, newest first: for its guardians and the
        hospital's administrators."""
        if not (ctx.caller.role == "parent" or _is_hospital_admin(ctx)):
            raise ForbiddenError(
                "Only the child's guardians and the hospital's administrators list emergency "
                "accesses."
            )
        child = _stored_child(ctx, childId)
        if child is None or not (_is_hospital_admin(ctx) or _is_guardian(ctx, child)):
            raise NotFoundError("No such child is visible to you.")
        ids = [i for _, i in ctx.get_prefix(f"child-emergency/{child['id']}/") if i is not None]
        found: list[EmergencyAccess | None] = [ctx.get_state(f"emergency/{i}") for i in ids]
        return [_emergency_view(access) for access in reversed(found) if access is not None]

    # -- ends of consent (the server's) -------------------------------------------------------

    @query("dueConsents")
    def due_consents(self, ctx: TxContext) -> list[str]:
        """For the server: the ends of agreements and emergency accesses to announce now."""
        return consent.due(ctx)

    @transaction("expireConsents")
    def expire_consents(self, ctx: TxContext, keys: list[str]) -> int:
        """For the server: announce the ends that `dueConsents` named and that are still due.

        An agreement's doctor and the guardians get AgreementEnded, and the agreement's
        index entries go; an emergency access's doctor and the guardians get
        EmergencyAccessEnded. Returns how many ends were announced.
        """
        ends = consent.take_due(ctx, keys)
        for end in ends:
            if end["kind"] == "agreement":
                _announce_agreement_end(ctx, end["id"])
            else:
                _announce_emergency_end(ctx, end["id"])
        return len(ends)

    @query("treatingDoctors")
    def treating_doctors(self, ctx: TxContext, childId: str) -> list[str]:
        """For the server: the doctors (ORG/UID) of the child's agreements in force, whom a
        school's report request for the child is for."""
        consent.require_server(ctx)
        child = _stored_child(ctx, childId)
        return [] if child is None else _doctors_in_force(ctx, child["id"])


def _version_position(after: Any) -> int | None:
    """The card version a history position names: a version number, as a string."""
    if after is None:
        return None
    if isinstance(after, str) and after.isascii() and after.isdigit() and len(after) <= 10:
        version = int(after)
        if str(version) == after and 1 <= version < 2**31:
            return version
    raise BadInputError("after is not a position in this list.")


def _today(ctx: TxContext) -> date:
    return date.fromisoformat(ctx.timestamp[:10])


def _require_role(ctx: TxContext, role: str, message: str) -> None:
    if ctx.caller.role != role:
        raise ForbiddenError(message)


def _enrolled(ctx: TxContext, uid: Any, *, org_kind: str, role: str) -> str | None:
    """The person an enrolled UID names if it has `role` in an `org_kind` organisation."""
    if not isinstance(uid, str):
        return None
    found = ctx.directory.user(uid)
    if found is None or found[1] != role or ctx.directory.org_kind(found[0]) != org_kind:
        return None
    return person(found[0], uid)


def _parent_named(ctx: TxContext, uid: str) -> str:
    """The parent a UID names; an unknown UID stays in the caller's own organisation."""
    return _enrolled(ctx, uid, org_kind="parents", role="parent") or person(ctx.caller.org, uid)


def _is_guardian(ctx: TxContext, child: Child) -> bool:
    return ctx.caller.role == "parent" and person_of(ctx.caller) in child["guardians"]


def _is_named_doctor(ctx: TxContext, agreement: Agreement) -> bool:
    return ctx.caller.role == "doctor" and person_of(ctx.caller) == agreement["doctor"]


def _treats(ctx: TxContext, child_id: str) -> bool:
    """Whether the caller is the doctor of an ACTIVE agreement for the child, in force now."""
    return ctx.caller.role == "doctor" and _entry_in_force(
        ctx, ctx.get_state(f"active/{child_id}/{person_of(ctx.caller)}")
    )


def _patient_ids(ctx: TxContext) -> list[str]:
    """The children of the calling doctor's ACTIVE agreements in force (one range read)."""
    prefix = f"doctor-child/{person_of(ctx.caller)}/"
    return [
        key[len(prefix) :] for key, entry in ctx.get_prefix(prefix) if _entry_in_force(ctx, entry)
    ]


def _doctors_in_force(ctx: TxContext, child_id: str) -> list[str]:
    """The doctors (ORG/UID) of the child's ACTIVE agreements in force (one range read)."""
    prefix = f"active/{child_id}/"
    return [
        key[len(prefix) :] for key, entry in ctx.get_prefix(prefix) if _entry_in_force(ctx, entry)
    ]


def _entry_in_force(ctx: TxContext, entry: AgreementInForce | str | None) -> bool:
    """Whether an ACTIVE agreement's index entry is in force now. An entry written before
    agreements could end holds the agreement id alone: that agreement has no end."""
    if entry is None:
        return False
    return isinstance(entry, str) or in_force(ctx, entry["validUntil"])


def _index_in_force(ctx: TxContext, agreement: Agreement) -> None:
    """Index an ACTIVE agreement under its child and its doctor, with its end."""
    entry: AgreementInForce = {
        "agreementId": agreement["id"],
        "validUntil": agreement.get("validUntil"),
    }
    child_id, doctor = agreement["childId"], agreement["doctor"]
    ctx.put_state(f"active/{child_id}/{doctor}", entry, child=child_id)
    ctx.put_state(f"doctor-child/{doctor}/{child_id}", entry, child=child_id)


def _unindex_in_force(ctx: TxContext, agreement: Agreement) -> None:
    """Remove the agreement's index entries, if they are still its own."""
    child_id, doctor = agreement["childId"], agreement["doctor"]
    entry: AgreementInForce | str | None = ctx.get_state(f"active/{child_id}/{doctor}")
    if entry == agreement["id"] or (
        isinstance(entry, dict) and entry["agreementId"] == agreement["id"]
    ):
        ctx.del_state(f"active/{child_id}/{doctor}")
        ctx.del_state(f"doctor-child/{doctor}/{child_id}")


def _agreement_end(agreement_id: str) -> ConsentEnd:
    return {"kind": "agreement", "id": agreement_id}


def _agreement_status(ctx: TxContext, agreement: Agreement) -> str:
    """The status as stored, but EXPIRED for a pending or active agreement past its end."""
    status = agreement["status"]
    if status in ("PENDING", "ACTIVE") and not in_force(ctx, agreement.get("validUntil")):
        return "EXPIRED"
    return status


def _stored_child(ctx: TxContext, child_id: Any) -> Child | None:
    found: Child | None = (
        ctx.get_state(f"child/{child_id}") if isinstance(child_id, str) and child_id else None
    )
    return found


def card_purpose(ctx: TxContext, child: Child) -> str | None:
    """The purpose under which the caller may read the child, its card and the card's
    history: GUARDIAN for its guardians, TREATMENT for the doctor of an ACTIVE agreement in
    force, EMERGENCY for a doctor whose emergency access to the child is open; None
    (refused) for everyone else. No rule lets an administrator read them."""
    if _is_guardian(ctx, child):
        return "GUARDIAN"
    if _treats(ctx, child["id"]):
        return "TREATMENT"
    if _in_emergency(ctx, child["id"]):
        return "EMERGENCY"
    return None


def _in_emergency(ctx: TxContext, child_id: str) -> bool:
    """Whether the caller is a doctor whose emergency access to the child is open now."""
    if ctx.caller.role != "doctor":
        return False
    opened: OpenEmergencyAccess | None = ctx.get_state(
        f"open-emergency/{child_id}/{person_of(ctx.caller)}"
    )
    return opened is not None and in_force(ctx, opened["validUntil"])


def _readable_child(ctx: TxContext, child_id: Any, what: str) -> tuple[Child, str]:
    """The child and the purpose `card_purpose` grants the caller to read `what` of it
    under; NOT_FOUND for everyone else, noted as a refused read (access_log.py)."""
    child = _stored_child(ctx, child_id)
    purpose = None if child is None else card_purpose(ctx, child)
    if child is None or purpose is None:
        refused = None
        if child is not None:
            claimed = access_log.claimed_purpose(ctx)
            refused = _read_of(child, what, version=None, purpose=claimed)
        ctx.read_refused(refused)
        raise NotFoundError("No such child is visible to you.")
    return child.copy(), purpose


def _read_of(child: Child, what: str, *, version: int | None, purpose: str) -> AccessFacts:
    """A read of the child's `what`, whose record is the child's own id."""
    return access_log.read_of(
        child["id"],
        what,
        child["id"],
        version=version,
        purpose=purpose,
        guardians=child["guardians"],
    )


def _visible_child(ctx: TxContext, child_id: Any) -> Child:
    """The child if `card_purpose` lets the caller read it; NOT_FOUND for everyone else."""
    child = _stored_child(ctx, child_id)
    if child is None or card_purpose(ctx, child) is None:
        raise NotFoundError("No such child is visible to you.")
    return child.copy()


def _visible_agreement(ctx: TxContext, agreement_id: Any) -> tuple[Agreement, Child]:
    """The agreement and its child if the caller is a guardian or the named doctor."""
    key = f"agreement/{agreement_id}" if isinstance(agreement_id, str) and agreement_id else ""
    agreement: Agreement | None = ctx.get_state(key) if key else None
    child = _stored_child(ctx, agreement["childId"]) if agreement else None
    if agreement is None or child is None:
        raise NotFoundError("No such agreement is visible to you.")
    if not (_is_named_doctor(ctx, agreement) or _is_guardian(ctx, child)):
        raise NotFoundError("No such agreement is visible to you.")
    return agreement.copy(), child.copy()


def _is_hospital_admin(ctx: TxContext) -> bool:
    return ctx.caller.role == "admin" and ctx.directory.org_kind(ctx.caller.org) == "hospital"


def _visible_emergency(ctx: TxContext, access_id: Any) -> tuple[EmergencyAccess, Child]:
    """The emergency access and its child if the caller is the doctor who opened it, a
    guardian or a hospital administrator; NOT_FOUND for everyone else."""
    found: EmergencyAccess | None = (
        ctx.get_state(f"emergency/{access_id}")
        if isinstance(access_id, str) and access_id
        else None
    )
    child = _stored_child(ctx, found["childId"]) if found else None
    if found is None or child is None:
        raise NotFoundError("No such emergency access is visible to you.")
    opener = ctx.caller.role == "doctor" and person_of(ctx.caller) == found["doctor"]
    if not (opener or _is_guardian(ctx, child) or _is_hospital_admin(ctx)):
        raise NotFoundError("No such emergency access is visible to you.")
    return found.copy(), child.copy()


def _emergency_end(access_id: str) -> ConsentEnd:
    return {"kind": "emergency", "id": access_id}


def _close_emergency(ctx: TxContext, access: EmergencyAccess) -> None:
    """Remove the doctor's open-access entry for the child, if it is still this access's."""
    key = f"open-emergency/{access['childId']}/{access['doctor']}"
    current: OpenEmergencyAccess | None = ctx.get_state(key)
    if current is not None and current["id"] == access["id"]:
        ctx.del_state(key)


def _announce_agreement_end(ctx: TxContext, agreement_id: str) -> None:
    """An agreement's end has come: its index entries go, and its doctor and the guardians
    are told."""
    agreement: Agreement | None = ctx.get_state(f"agreement/{agreement_id}")
    child = _stored_child(ctx, agreement["childId"]) if agreement else None
    if agreement is None or child is None or agreement["status"] == "REVOKED":
        return
    if in_force(ctx, agreement.get("validUntil")):
        return
    _unindex_in_force(ctx, agreement)
    ctx.set_event(
        "AgreementEnded", _audience(agreement_id, [*child["guardians"], agreement["doctor"]])
    )


def _announce_emergency_end(ctx: TxContext, access_id: str) -> None:
    """An emergency access ran out: its doctor and the guardians are told."""
    access: EmergencyAccess | None = ctx.get_state(f"emergency/{access_id}")
    child = _stored_child(ctx, access["childId"]) if access else None
    if access is None or child is None or access["endedAt"] is not None:
        return
    if in_force(ctx, access["validUntil"]):
        return
    _close_emergency(ctx, access)
    ctx.set_event(
        "EmergencyAccessEnded", _audience(access_id, [*child["guardians"], access["doctor"]])
    )


def _offered_child(ctx: TxContext, child_id: Any) -> Child:
    """The child whose guardianship the calling parent is offered; NOT_FOUND otherwise."""
    child = _stored_child(ctx, child_id)
    if (
        ctx.caller.role != "parent"
        or child is None
        or person_of(ctx.caller) not in child.get("pendingGuardians", [])
    ):
        raise NotFoundError("No such child is visible to you.")
    return child.copy()


def _current_doctor(ctx: TxContext, child_id: str) -> str | None:
    """The doctor of an ACTIVE agreement in force: a doctor sees only themselves, guardians
    the first."""
    doctors = _doctors_in_force(ctx, child_id)
    if ctx.caller.role == "doctor":
        return ctx.caller.uid if person_of(ctx.caller) in doctors else None
    return uid_of(doctors[0]) if doctors else None


def _child_view(ctx: TxContext, child: Child, *, doctor_uid: str | None) -> ChildView:
    """The child as its guardians and doctor see it; offers pending are the guardians' business."""
    pending = child.get("pendingGuardians", []) if _is_guardian(ctx, child) else []
    return {
        "id": child["id"],
        "fullName": child["fullName"],
        "birthDate": child["birthDate"],
        "sex": child.get("sex"),
        "guardians": uids_of(child["guardians"]),
        "pendingGuardians": uids_of(pending),
        "doctorUid": doctor_uid,
    }


def _emergency_view(access: EmergencyAccess) -> EmergencyAccessView:
    ended_by = access["endedBy"]
    return {
        "id": access["id"],
        "childId": access["childId"],
        "doctorUid": access["doctorUid"],
        "reason": access["reason"],
        "openedAt": access["openedAt"],
        "validUntil": access["validUntil"],
        "endedAt": access["endedAt"],
        "endedBy": None if ended_by is None else uid_of(ended_by),
    }


def _offered_view(child: Child) -> ChildView:
    """What a parent offered guardianship sees before accepting: who the child is (id, name
    and birth date, so the parent can recognise the child), not its guardians or doctor."""
    return {
        "id": child["id"],
        "fullName": child["fullName"],
        "birthDate": child["birthDate"],
        "sex": None,
        "guardians": [],
        "pendingGuardians": [],
        "doctorUid": None,
    }


def _agreement_view(ctx: TxContext, agreement: Agreement) -> AgreementView:
    """The agreement without its parties as ORG/UID: the UIDs name them for the API."""
    return {
        "id": agreement["id"],
        "childId": agreement["childId"],
        "parentUid": agreement["parentUid"],
        "doctorUid": agreement["doctorUid"],
        "status": _agreement_status(ctx, agreement),
        "createdAt": agreement["createdAt"],
        "updatedAt": agreement["updatedAt"],
        "validUntil": agreement.get("validUntil"),
    }


def _audience(subject_id: str, people: list[str], *, version: int | None = None) -> Audience:
    """Event payload: the subject and the people (ORG/UID) who may see it."""
    audience: Audience = {"subjectId": subject_id, "people": sorted(set(people)), "orgs": []}
    if version is not None:
        audience["version"] = version
    return audience


def _empty_card(ctx: TxContext, child_id: str) -> MedicalCard:
    return {
        "childId": child_id,
        "version": 1,
        "updatedAt": ctx.timestamp,
        "updatedBy": ctx.caller.uid,
        "bloodType": None,
        "allergies": [],
        "chronicConditions": [],
        "vaccinations": [],
        "examinations": [],
        "healthGroup": None,
        "physicalEducationGroup": None,
        "notes": None,
    }


def _patched(ctx: TxContext, card: MedicalCard, patch: dict[str, Any]) -> MedicalCard:
    """A copy of the card with a patch's fields validated and set; omitted fields stay.

    The patch's examinations may repeat the card's as they are.
    """
    unknown = sorted(set(patch) - set(CARD_FIELDS))
    if unknown:
        raise BadInputError(f"The card has no field {unknown[0]!r}.")
    if not patch:
        raise BadInputError("The patch changes nothing: give at least one field.")
    today = _today(ctx)
    patched = card.copy()
    # In the patch's order, so that the first of several bad fields is the one refused.
    for field, value in patch.items():
        match field:
            case "allergies":
                patched["allergies"] = check.text_list(value or [], field)
            case "chronicConditions":
                patched["chronicConditions"] = check.text_list(value or [], field)
            case "bloodType":
                patched["bloodType"] = (
                    None if value is None else check.choice(value, field, BLOOD_TYPES)
                )
            case "healthGroup":
                patched["healthGroup"] = (
                    None if value is None else check.integer(value, field, low=1, high=5)
                )
            case "physicalEducationGroup":
                patched["physicalEducationGroup"] = (
                    None if value is None else check.choice(value, field, PE_GROUPS)
                )
            case "notes":
                patched["notes"] = (
                    None
                    if value is None
                    else check.free_text(value, field, max_length=check.NOTES_MAX)
                )
            case "vaccinations":
                patched["vaccinations"] = (
                    []
                    if value is None
                    else [_vaccination(v, today) for v in check.records(value, field)]
                )
            case "examinations":
                patched["examinations"] = (
                    []
                    if value is None
                    else [
                        _examination(ctx, e, today, card["examinations"])
                        for e in check.records(value, field)
                    ]
                )
    return patched


def _vaccination(raw: Any, today: date) -> Vaccination:
    entry = check.mapping(raw, "Each vaccination")
    return {
        "vaccine": check.text(entry.get("vaccine"), "vaccination vaccine"),
        "date": check.past_date(entry.get("date"), "vaccination date", today=today),
        "dose": check.integer(entry.get("dose"), "vaccination dose", low=1, high=10),
    }


def _examination(ctx: TxContext, raw: Any, today: date, recorded: list[Examination]) -> Examination:
    """An examination as recorded: one already on the card is kept as it is (whoever made
    it); any other is attributed to the calling doctor, and naming someone else is refused."""
    entry = check.mapping(raw, "Each examination")
    doctor = entry.get("doctorUid") or ctx.caller.uid
    height, weight, findings = entry.get("heightCm"), entry.get("weightKg"), entry.get("findings")
    examination: Examination = {
        "date": check.past_date(entry.get("date"), "examination date", today=today),
        "doctorUid": doctor,
        "heightCm": None if height is None else check.number(height, "heightCm", low=20, high=250),
        "weightKg": None if weight is None else check.number(weight, "weightKg", low=0.5, high=300),
        "findings": check.optional_free_text(findings, "findings", max_length=check.TEXT_MAX),
    }
    if doctor != ctx.caller.uid and examination not in recorded:
        raise BadInputError("A new examination's doctorUid, when given, must be your own UID.")
    return examination
