"""A medical card as FHIR resources: an Immunization per vaccination, an AllergyIntolerance
per allergy, a Condition per chronic condition, and Observations for examinations and the
card's single values.

A card item has no id of its own, so each resource's id is derived from the child and the
item: it stays the same while the item does, and two equal items of one list still get
two ids (the second one's position among its equals is part of what is hashed).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

import rfc8785
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.immunization import Immunization
from fhir.resources.R4B.observation import Observation

from chaincode.records import CardView, Examination

from . import codes
from .naming import Naming
from .validated import JsonResource, validated

# The hashed part of an id: 32 hex digits (128 bits), so ids stay far below FHIR's 64.
_ID_DIGITS = 32


def item_ids(kind: str, child_id: str, items: Iterable[Any]) -> list[str]:
    """`KIND-HASH` for each item: the SHA-256 of the child id and the item's RFC 8785 text,
    and for the n-th repeat of an equal item (n >= 1) also "#n"."""
    seen: Counter[str] = Counter()
    ids = []
    for item in items:
        text = rfc8785.dumps(item).decode()
        repeat = seen[text]
        seen[text] += 1
        hashed = child_id + text + (f"#{repeat}" if repeat else "")
        ids.append(f"{kind}-{hashlib.sha256(hashed.encode()).hexdigest()[:_ID_DIGITS]}")
    return ids


def card_resources(card: CardView, naming: Naming) -> list[JsonResource]:
    """Every resource of the card, in the card's order: Immunizations, AllergyIntolerances,
    Conditions, then Observations (examinations, then blood type, health group, physical
    education group and notes, each only when the card holds it). Each carries the card's
    updatedAt as meta.lastUpdated."""
    child_id = card["childId"]
    patient = naming.patient_reference(child_id)
    meta = {"lastUpdated": card["updatedAt"]}
    resources: list[JsonResource] = []

    vaccinations = card["vaccinations"]
    for resource_id, vaccination in zip(
        item_ids("imm", child_id, vaccinations), vaccinations, strict=True
    ):
        immunization = {
            "resourceType": "Immunization",
            "id": resource_id,
            "meta": dict(meta),
            "status": "completed",
            "vaccineCode": codes.vaccine_code(vaccination["vaccine"]),
            "patient": dict(patient),
            "occurrenceDateTime": vaccination["date"],
            "protocolApplied": [{"doseNumberPositiveInt": vaccination["dose"]}],
        }
        resources.append(validated(Immunization, immunization))

    allergies = card["allergies"]
    for resource_id, allergy in zip(
        item_ids("allergy", child_id, allergies), allergies, strict=True
    ):
        intolerance = {
            "resourceType": "AllergyIntolerance",
            "id": resource_id,
            "meta": dict(meta),
            "clinicalStatus": codes.concept(codes.ALLERGY_ACTIVE),
            "code": {"text": allergy},
            "patient": dict(patient),
        }
        resources.append(validated(AllergyIntolerance, intolerance))

    conditions = card["chronicConditions"]
    for resource_id, condition in zip(
        item_ids("condition", child_id, conditions), conditions, strict=True
    ):
        problem = {
            "resourceType": "Condition",
            "id": resource_id,
            "meta": dict(meta),
            "clinicalStatus": codes.concept(codes.CONDITION_ACTIVE),
            "category": [codes.concept(codes.PROBLEM_LIST_ITEM)],
            "code": {"text": condition},
            "subject": dict(patient),
        }
        resources.append(validated(Condition, problem))

    observations = _observations(card, naming)
    for resource_id, (_, elements) in zip(
        item_ids("obs", child_id, (item for item, _ in observations)), observations, strict=True
    ):
        observation = {
            "resourceType": "Observation",
            "id": resource_id,
            "meta": dict(meta),
            "status": "final",
            **elements,
            "subject": dict(patient),
        }
        resources.append(validated(Observation, observation))
    return resources


def _observations(card: CardView, naming: Naming) -> list[tuple[dict[str, Any], JsonResource]]:
    """Each observation's item (what its id is derived from) and its elements but the
    resource type, id, meta, status and subject."""
    found: list[tuple[dict[str, Any], JsonResource]] = []
    for examination in card["examinations"]:
        found.extend(_examined(examination, naming))
    if card["bloodType"] is not None:
        found.append(
            (
                {"bloodType": card["bloodType"]},
                {
                    "category": [codes.concept(codes.LABORATORY)],
                    "code": codes.concept(codes.BLOOD_GROUP),
                    "valueCodeableConcept": codes.blood_type(card["bloodType"]),
                },
            )
        )
    if card["healthGroup"] is not None:
        found.append(
            (
                {"healthGroup": card["healthGroup"]},
                {"code": codes.concept(codes.HEALTH_GROUP), "valueInteger": card["healthGroup"]},
            )
        )
    if card["physicalEducationGroup"] is not None:
        group = card["physicalEducationGroup"]
        found.append(
            (
                {"physicalEducationGroup": group},
                {
                    "code": codes.concept(codes.PHYSICAL_EDUCATION_GROUP),
                    "valueCodeableConcept": codes.concept(codes.pe_group(group)),
                },
            )
        )
    if card["notes"] is not None:
        found.append(
            (
                {"notes": card["notes"]},
                {"code": codes.concept(codes.ANNOTATION_COMMENT), "valueString": card["notes"]},
            )
        )
    return found


# An examination's measures: its field, the LOINC code, the UCUM unit.
MEASURES: tuple[tuple[Literal["heightCm", "weightKg"], dict[str, Any], dict[str, Any]], ...] = (
    ("heightCm", codes.BODY_HEIGHT, codes.CENTIMETRE),
    ("weightKg", codes.BODY_WEIGHT, codes.KILOGRAM),
)


def _examined(
    examination: Examination, naming: Naming
) -> list[tuple[dict[str, Any], JsonResource]]:
    """Height, weight and findings of one examination, each when recorded."""
    found: list[tuple[dict[str, Any], JsonResource]] = []

    def add(element: str, observed: JsonResource) -> None:
        item = {"examination": dict(examination), "element": element}
        observed["effectiveDateTime"] = examination["date"]
        observed["performer"] = [naming.person(examination["doctorUid"], "doctor")]
        found.append((item, observed))

    for element, code, unit in MEASURES:
        measured = examination[element]
        if measured is not None:
            add(
                element,
                {
                    "category": [codes.concept(codes.VITAL_SIGNS)],
                    "code": codes.concept(code),
                    "valueQuantity": {"value": measured, **unit},
                },
            )
    if examination["findings"] is not None:
        add(
            "findings",
            {
                "category": [codes.concept(codes.EXAM)],
                "code": codes.concept(codes.PHYSICAL_FINDINGS),
                "valueString": examination["findings"],
            },
        )
    return found
