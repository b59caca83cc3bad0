"""The `medical` contract (channel `medical`): children, agreements and medical cards.

Who may do what: a child, its card and the card's history are read by
the child's guardians and by the doctor of an ACTIVE agreement; only that
doctor updates the card. An agreement is read by its parent and its doctor;
guardians sign and revoke, the named doctor accepts. Anyone else is told the
object does not exist (NOT_FOUND), so nothing leaks about other families.

A parent who registers a child is its guardian; the other parents named then
are offered guardianship and become guardians only by accepting it
(`acceptGuardianship`). Until then the child is invisible to them but for its
name in `pendingGuardianships`. People are (organisation, UID) pairs
(`people.py`): guardians, agreement parties, index keys and event audiences.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from domain.errors import BadInputError, ConflictError, ForbiddenError, NotFoundError

from . import paging
from . import validation as check
from .base import Contract, TxContext, query, transaction
from .paging import DEFAULT_FIRST
from .people import person, person_of, uid_of, uids_of
from .records import (
    Agreement,
    AgreementView,
    Audience,
    CardRevision,
    CardView,
    Child,
    ChildGuardians,
    ChildView,
    Examination,
    MedicalCard,
    Page,
    Vaccination,
)

BLOOD_TYPES = ("O+", "O-", "A+", "A-", "B+", "B-", "AB+", "AB-")
PE_GROUPS = ("MAIN", "PREPARATORY", "SPECIAL", "EXEMPT")
MAX_GUARDIANS = 4
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


class MedicalContract(Contract):
    name = "medical"
    channel = "medical"

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
        ctx.put_state(f"child/{child_id}", child)
        ctx.put_state(f"card/{child_id}", _empty_card(ctx, child_id))
        ctx.put_state(f"guardian-child/{guardian}/{child_id}", child_id)
        for invitee in offered:
            ctx.put_state(f"pending-guardian/{invitee}/{child_id}", child_id)
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
        ctx.put_state(f"child/{child['id']}", child)
        ctx.del_state(f"pending-guardian/{me}/{child['id']}")
        ctx.put_state(f"guardian-child/{me}/{child['id']}", child["id"])
        ctx.set_event("GuardianshipAccepted", _audience(child["id"], child["guardians"]))
        return _child_view(ctx, child, doctor_uid=_current_doctor(ctx, child["id"]))

    @query("pendingGuardianships")
    def pending_guardianships(self, ctx: TxContext) -> list[ChildView]:
        """The children a parent is offered guardianship of, as `_offered_view` shows them."""
        if ctx.caller.role != "parent":
            return []
        me = person_of(ctx.caller)
        ids = [value for _, value in ctx.get_prefix(f"pending-guardian/{me}/")]
        children: list[Child | None] = [ctx.get_state(f"child/{child_id}") for child_id in ids]
        return [
            _offered_view(child)
            for child in children
            if child is not None and me in child.get("pendingGuardians", [])
        ]

    @query("readChild")
    def read_child(self, ctx: TxContext, childId: str) -> ChildView:
        child = _visible_child(ctx, childId)
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
        order, which is no time order (child ids carry no time)."""
        if ctx.caller.role == "parent":
            prefixes = [f"guardian-child/{person_of(ctx.caller)}/"]
        elif ctx.caller.role == "doctor":
            prefixes = [f"doctor-child/{person_of(ctx.caller)}/"]
        else:
            prefixes = []

        def load(child_id: str) -> ChildView | None:
            child: Child | None = ctx.get_state(f"child/{child_id}")
            if child is None:
                return None
            return _child_view(ctx, child, doctor_uid=_current_doctor(ctx, child["id"]))

        return paging.newest_first(ctx, prefixes, first=first, after=after, load=load)

    @query("listPatientIds")
    def list_patient_ids(self, ctx: TxContext) -> list[str]:
        """The ids of a doctor's children under ACTIVE agreements (one range read); [] for others.

        What the gateway hands the report contract as the doctor's patients: listChildren
        would also read every child, which made each report cost O(patients) reads.
        """
        return _patient_ids(ctx) if ctx.caller.role == "doctor" else []

    # -- agreements ------------------------------------------------------------------

    @transaction("signAgreement")
    def sign_agreement(self, ctx: TxContext, childId: str, doctorUid: str) -> AgreementView:
        """A guardian names a hospital doctor for the child: a PENDING agreement."""
        child = _visible_child(ctx, childId)
        if not _is_guardian(ctx, child):
            raise ForbiddenError("Only the child's guardians sign agreements.")
        doctor = _enrolled(ctx, doctorUid, org_kind="hospital", role="doctor")
        if doctor is None:
            raise BadInputError("doctorUid must name an enrolled hospital doctor.")
        open_key = f"open-agreement/{child['id']}/{doctor}"
        if ctx.get_state(open_key) is not None:
            raise ConflictError(
                "This doctor already has a pending or active agreement for the child."
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
        }
        ctx.put_state(f"agreement/{agreement_id}", agreement)
        ctx.put_state(open_key, agreement_id)
        ctx.put_state(f"child-agreement/{child['id']}/{agreement_id}", agreement_id)
        ctx.put_state(f"doctor-agreement/{doctor}/{agreement_id}", agreement_id)
        ctx.set_event("AgreementSigned", _audience(agreement_id, [*child["guardians"], doctor]))
        return _agreement_view(agreement)

    @transaction("acceptAgreement")
    def accept_agreement(self, ctx: TxContext, id: str) -> AgreementView:
        """The doctor named in a PENDING agreement accepts it: ACTIVE, card access begins."""
        agreement, child = _visible_agreement(ctx, id)
        if not _is_named_doctor(ctx, agreement):
            raise ForbiddenError("Only the doctor named in the agreement can accept it.")
        if agreement["status"] != "PENDING":
            raise ConflictError(
                f"The agreement is {agreement['status']}; only a PENDING one is accepted."
            )
        agreement = {**agreement, "status": "ACTIVE", "updatedAt": ctx.timestamp}
        ctx.put_state(f"agreement/{id}", agreement)
        ctx.put_state(f"active/{agreement['childId']}/{agreement['doctor']}", id)
        ctx.put_state(f"doctor-child/{agreement['doctor']}/{agreement['childId']}", id)
        ctx.set_event(
            "AgreementAccepted", _audience(id, [*child["guardians"], agreement["doctor"]])
        )
        return _agreement_view(agreement)

    @transaction("revokeAgreement")
    def revoke_agreement(self, ctx: TxContext, id: str) -> AgreementView:
        """A guardian ends an agreement: REVOKED, and the doctor's access ends with this block."""
        agreement, child = _visible_agreement(ctx, id)
        if not _is_guardian(ctx, child):
            raise ForbiddenError("Only the child's guardians revoke agreements.")
        if agreement["status"] == "REVOKED":
            raise ConflictError("The agreement is already revoked.")
        agreement = {**agreement, "status": "REVOKED", "updatedAt": ctx.timestamp}
        ctx.put_state(f"agreement/{id}", agreement)
        child_id, doctor = agreement["childId"], agreement["doctor"]
        ctx.del_state(f"open-agreement/{child_id}/{doctor}")
        if ctx.get_state(f"active/{child_id}/{doctor}") == id:
            ctx.del_state(f"active/{child_id}/{doctor}")
            ctx.del_state(f"doctor-child/{doctor}/{child_id}")
        ctx.set_event("AgreementRevoked", _audience(id, [*child["guardians"], doctor]))
        return _agreement_view(agreement)

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
                ids = [v for _, v in ctx.get_prefix(f"guardian-child/{person_of(ctx.caller)}/")]
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
            return _agreement_view(agreement)

        return paging.newest_first(ctx, prefixes, first=first, after=after, load=load)

    # -- the medical card ------------------------------------------------------------

    @query("readCard")
    def read_card(self, ctx: TxContext, childId: str) -> CardView:
        child = _visible_child(ctx, childId)
        card: MedicalCard | None = ctx.get_state(f"card/{child['id']}")
        if card is None:
            raise NotFoundError("The child has no medical card.")
        return {**card, "childName": child["fullName"]}

    @transaction("updateMedicalCard")
    def update_medical_card(
        self, ctx: TxContext, childId: str, expectedVersion: int, patch: dict[str, Any]
    ) -> CardView:
        """The doctor of an ACTIVE agreement changes the card; a stale version is a CONFLICT.

        `patch` is checked here: it is shaped like records.CardPatch when the API sends it.
        """
        child = _visible_child(ctx, childId)
        if not _has_active_agreement(ctx, child["id"]):
            raise ForbiddenError("Only a doctor with an active agreement updates the medical card.")
        check.integer(expectedVersion, "expectedVersion", low=1, high=2**31 - 1)
        recorded: MedicalCard | None = ctx.get_state(f"card/{child['id']}")
        if recorded is None:
            raise NotFoundError("The child has no medical card.")
        card = _patched(ctx, recorded, check.mapping(patch, "patch"))
        if recorded["version"] != expectedVersion:
            raise ConflictError(
                f"The card is at version {recorded['version']}, not {expectedVersion}: "
                "it changed since you read it. Reload it and apply your change again."
            )
        card["version"] = recorded["version"] + 1
        card["updatedAt"] = ctx.timestamp
        card["updatedBy"] = ctx.caller.uid
        ctx.put_state(f"card/{child['id']}", card)
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
    ) -> Page[CardRevision]:
        """Every version of the card with the transaction, block, author and time that made
        it, newest first; a position is a version number.

        The card's history is read whole and the page sliced from it: the backends keep a
        key's history as one list, read at once.
        """
        size = paging.page_size(first)
        below = _version_position(after)
        child = _visible_child(ctx, childId)
        revisions: list[CardRevision] = [
            {
                "version": card["version"],
                "txId": entry.tx_id,
                "blockNumber": entry.block_number,
                "author": entry.creator_uid,
                "timestamp": entry.timestamp,
                "card": card,
            }
            for entry in reversed(ctx.get_history(f"card/{child['id']}"))
            if (card := entry.json()) is not None and (below is None or card["version"] < below)
        ]
        return {
            "entries": [{"position": str(r["version"]), "item": r} for r in revisions[:size]],
            "hasMore": len(revisions) > size,
        }


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


def _has_active_agreement(ctx: TxContext, child_id: str) -> bool:
    return (
        ctx.caller.role == "doctor"
        and ctx.get_state(f"active/{child_id}/{person_of(ctx.caller)}") is not None
    )


def _patient_ids(ctx: TxContext) -> list[str]:
    """The children of the calling doctor's ACTIVE agreements (one range read)."""
    prefix = f"doctor-child/{person_of(ctx.caller)}/"
    return [key[len(prefix) :] for key, _ in ctx.get_prefix(prefix)]


def _stored_child(ctx: TxContext, child_id: Any) -> Child | None:
    found: Child | None = (
        ctx.get_state(f"child/{child_id}") if isinstance(child_id, str) and child_id else None
    )
    return found


def _visible_child(ctx: TxContext, child_id: Any) -> Child:
    """The child if the caller is a guardian or its doctor; NOT_FOUND for everyone else."""
    child = _stored_child(ctx, child_id)
    if child is None or not (_is_guardian(ctx, child) or _has_active_agreement(ctx, child["id"])):
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
    """The doctor of an ACTIVE agreement: a doctor sees only themselves, guardians the first."""
    prefix = f"active/{child_id}/"
    doctors = [key[len(prefix) :] for key, _ in ctx.get_prefix(prefix)]
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


def _agreement_view(agreement: Agreement) -> AgreementView:
    """The agreement without its parties as ORG/UID: the UIDs name them for the API."""
    return {
        "id": agreement["id"],
        "childId": agreement["childId"],
        "parentUid": agreement["parentUid"],
        "doctorUid": agreement["doctorUid"],
        "status": agreement["status"],
        "createdAt": agreement["createdAt"],
        "updatedAt": agreement["updatedAt"],
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
