"""fhir_export's mapping of records to FHIR R4 resources, over hand-made views.

Every resource a builder returns is parsed back with its fhir.resources R4B model, and the
model's own JSON is the very resource returned (nothing lost or added); then each field is
compared with the record it came from.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import rfc8785
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.immunization import Immunization
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.resource import Resource
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chaincode import validation
from chaincode.records import (
    AccessEntryView,
    AgreementView,
    CardView,
    ChildView,
    Examination,
    ReportPermissionView,
    ReportView,
    Vaccination,
)
from domain.errors import BadInputError
from fhir_export import audit, bundles, card, codes, consents, documents, patient
from fhir_export.naming import Naming
from fhir_export.validated import validated

NET = "net-1"
BASE = "https://ledger.example:8443/fhir"
ORGS = {
    ("drwho", "doctor"): "hospital-a",
    ("mum", "parent"): "parents",
    ("dad", "parent"): "parents",
}
NAMING = Naming(NET, BASE, lambda uid, role: ORGS.get((uid, role)))
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
AT = "2026-12-07T10:11:12.123456Z"

MODELS: dict[str, type[Resource]] = {
    "Patient": Patient,
    "Immunization": Immunization,
    "AllergyIntolerance": AllergyIntolerance,
    "Condition": Condition,
    "Observation": Observation,
    "Consent": Consent,
    "AuditEvent": AuditEvent,
    "DocumentReference": DocumentReference,
    "Bundle": Bundle,
    "OperationOutcome": OperationOutcome,
}


def parsed_back(resource: dict[str, Any]) -> Any:
    """The resource parsed by its R4B model, after checking that the model's JSON is the
    resource itself, element for element, and that it survives a trip through JSON text."""
    model = MODELS[resource["resourceType"]]
    parsed = model.model_validate(json.loads(json.dumps(resource)))
    assert parsed.model_dump(mode="json", exclude_none=True) == resource
    return parsed


def person(value: str) -> dict[str, Any]:
    return {
        "identifier": {"system": f"urn:healthledger:{NET}:person", "value": value},
        "display": value,
    }


def record(value: str) -> dict[str, Any]:
    return {"system": f"urn:healthledger:{NET}:record", "value": value}


# -- views ---------------------------------------------------------------------------------


def a_child(**changes: Any) -> ChildView:
    child: ChildView = {
        "id": "child-t0000000000001-0123456789abcdef0123456789abcdef",
        "fullName": "Ann Marie Lee",
        "birthDate": "2019-03-04",
        "sex": "F",
        "guardians": ["mum", "dad"],
        "pendingGuardians": [],
        "doctorUid": "drwho",
    }
    child.update(changes)  # type: ignore[typeddict-item]
    return child


def an_examination(**changes: Any) -> Examination:
    examination: Examination = {
        "date": "2026-11-30",
        "doctorUid": "drwho",
        "heightCm": 121.5,
        "weightKg": 23,
        "findings": "Healthy.\nNo complaints.",
    }
    examination.update(changes)  # type: ignore[typeddict-item]
    return examination


def a_card(**changes: Any) -> CardView:
    vaccinations: list[Vaccination] = [
        {"vaccine": "MMR", "date": "2020-03-04", "dose": 1},
        {"vaccine": "Tick-borne encephalitis", "date": "2021-05-06", "dose": 2},
    ]
    card_view: CardView = {
        "childId": "child-1",
        "version": 4,
        "updatedAt": AT,
        "updatedBy": "hospital-a/drwho",
        "bloodType": "A Rh+",
        "allergies": ["peanuts", "penicillin"],
        "chronicConditions": ["asthma"],
        "vaccinations": vaccinations,
        "examinations": [an_examination()],
        "healthGroup": 2,
        "physicalEducationGroup": "PREPARATORY",
        "notes": "Glasses for reading.",
        "childName": "Ann Marie Lee",
    }
    card_view.update(changes)  # type: ignore[typeddict-item]
    return card_view


def an_empty_card(**changes: Any) -> CardView:
    empty: dict[str, Any] = {
        "bloodType": None,
        "allergies": [],
        "chronicConditions": [],
        "vaccinations": [],
        "examinations": [],
        "healthGroup": None,
        "physicalEducationGroup": None,
        "notes": None,
    }
    return a_card(**{**empty, **changes})


def an_agreement(**changes: Any) -> AgreementView:
    agreement: AgreementView = {
        "id": "agreement-t0000000000002-0123456789abcdef0123456789abcdef",
        "childId": "child-1",
        "parentUid": "mum",
        "doctorUid": "drwho",
        "status": "ACTIVE",
        "createdAt": "2026-01-02T03:04:05.000006Z",
        "updatedAt": "2026-01-03T03:04:05.000006Z",
        "validUntil": "2027-01-02T03:04:05.000006Z",
    }
    agreement.update(changes)  # type: ignore[typeddict-item]
    return agreement


def a_permission(**changes: Any) -> ReportPermissionView:
    permission: ReportPermissionView = {
        "school": "school-b",
        "grantedAt": "2026-06-01T08:00:00.500000Z",
        "validUntil": "2026-08-30T08:00:00.500000Z",
        "status": "ACTIVE",
        "revokedAt": None,
    }
    permission.update(changes)  # type: ignore[typeddict-item]
    return permission


def a_report(**changes: Any) -> ReportView:
    report: ReportView = {
        "id": "report-t0000000000003-0123456789abcdef0123456789abcdef",
        "txId": "tx-1",
        "childId": "child-1",
        "reportRequestId": "reportrequest-1",
        "authorUid": "drwho",
        "createdAt": "2026-05-30T12:00:00.250000Z",
        "cardVersion": 4,
        "cardHash": "ab" * 32,
        "cardSalt": None,
        "content": {
            "childName": "Ann Marie Lee",
            "healthGroup": 2,
            "physicalEducationGroup": "MAIN",
            "allergies": ["peanuts"],
            "chronicConditions": [],
            "vaccinations": [{"vaccine": "MMR", "date": "2020-03-04", "dose": 1}],
            "conclusion": "Fit for school; «no» restrictions.",
        },
        "status": "APPROVED",
        "permittedSchools": ["school-b"],
        "permissions": [a_permission()],
    }
    report.update(changes)  # type: ignore[typeddict-item]
    return report


def an_entry(**changes: Any) -> AccessEntryView:
    entry: AccessEntryView = {
        "id": "access-t0000000000004-0123456789abcdef0123456789abcdef",
        "at": AT,
        "childId": "child-1",
        "readerUid": "drwho",
        "readerOrg": "hospital-a",
        "readerRole": "doctor",
        "what": "MEDICAL_CARD",
        "recordId": "child-1",
        "version": 4,
        "purpose": "TREATMENT",
        "outcome": "PERMITTED",
        "blockNumber": 17,
    }
    entry.update(changes)  # type: ignore[typeddict-item]
    return entry


def of_type(resources: list[dict[str, Any]], resource_type: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == resource_type]


def observation_coded(resources: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [
        r
        for r in of_type(resources, "Observation")
        if any(c["code"] == code for c in r["code"]["coding"])
    ]


# -- naming --------------------------------------------------------------------------------


def test_a_person_is_named_as_org_slash_uid_and_by_display_only_when_the_org_is_unknown() -> None:
    assert NAMING.person("drwho", "doctor") == person("hospital-a/drwho")
    assert NAMING.person("drwho", "doctor", org="hospital-z") == person("hospital-z/drwho")
    assert NAMING.person("stranger", "doctor") == {"display": "stranger"}
    assert NAMING.organization("school-b") == {
        "identifier": {"system": f"urn:healthledger:{NET}:organization", "value": "school-b"},
        "display": "school-b",
    }
    assert NAMING.full_url("Patient", "child-1") == f"{BASE}/Patient/child-1"
    assert NAMING.patient_reference("child-1") == {"reference": "Patient/child-1"}


# -- patient -------------------------------------------------------------------------------


def test_a_child_round_trips_as_a_patient() -> None:
    child = a_child()
    resource = patient.patient_of(child, NAMING)
    parsed = parsed_back(resource)

    assert resource["id"] == child["id"]
    assert resource["identifier"] == [
        {"system": f"urn:healthledger:{NET}:child", "value": child["id"]}
    ]
    assert resource["name"] == [{"text": "Ann Marie Lee"}]
    assert resource["birthDate"] == "2019-03-04"
    assert parsed.birthDate.isoformat() == "2019-03-04"
    assert resource["gender"] == "female"
    assert resource["active"] is True
    assert resource["generalPractitioner"] == [person("hospital-a/drwho")]
    assert [c["name"]["text"] for c in resource["contact"]] == ["parents/mum", "parents/dad"]
    for contact in resource["contact"]:
        assert contact["relationship"] == [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                        "code": "GUARD",
                        "display": "guardian",
                    }
                ]
            }
        ]


@pytest.mark.parametrize(
    ("sex", "gender"),
    [
        ("M", "male"),
        ("male", "male"),
        ("Boy", "male"),
        ("f", "female"),
        ("FEMALE", "female"),
        ("girl", "female"),
        ("non-binary", "unknown"),
        ("Mädchen", "unknown"),
        (None, None),
    ],
)
def test_sex_maps_to_administrative_gender(sex: str | None, gender: str | None) -> None:
    resource = patient.patient_of(a_child(sex=sex), NAMING)
    parsed_back(resource)
    assert resource.get("gender") == gender


def test_a_patient_without_doctor_or_guardians_names_neither() -> None:
    resource = patient.patient_of(a_child(doctorUid=None, guardians=[]), NAMING)
    parsed_back(resource)
    assert "generalPractitioner" not in resource
    assert "contact" not in resource


def test_a_guardian_of_an_unknown_organisation_is_named_by_uid() -> None:
    resource = patient.patient_of(a_child(guardians=["stranger"], doctorUid="nobody"), NAMING)
    parsed_back(resource)
    assert resource["contact"][0]["name"] == {"text": "stranger"}
    assert resource["generalPractitioner"] == [{"display": "nobody"}]


def test_what_a_school_may_know_of_a_child_is_its_id_and_name() -> None:
    resource = patient.patient_named("child-1", "Ann Marie Lee", NAMING)
    parsed_back(resource)
    assert resource == {
        "resourceType": "Patient",
        "id": "child-1",
        "identifier": [{"system": f"urn:healthledger:{NET}:child", "value": "child-1"}],
        "name": [{"text": "Ann Marie Lee"}],
    }


# -- card ----------------------------------------------------------------------------------


def test_every_card_resource_parses_back_and_carries_the_cards_update_time() -> None:
    resources = card.card_resources(a_card(), NAMING)
    assert [r["resourceType"] for r in resources] == [
        "Immunization",
        "Immunization",
        "AllergyIntolerance",
        "AllergyIntolerance",
        "Condition",
        *["Observation"] * 7,
    ]
    for resource in resources:
        parsed_back(resource)
        assert resource["meta"] == {"lastUpdated": AT}


def test_vaccinations_round_trip_as_immunizations() -> None:
    immunizations = of_type(card.card_resources(a_card(), NAMING), "Immunization")
    mmr, tbe = immunizations
    parsed = parsed_back(mmr)
    assert mmr["status"] == "completed"
    assert mmr["patient"] == {"reference": "Patient/child-1"}
    assert mmr["occurrenceDateTime"] == "2020-03-04"
    assert parsed.protocolApplied[0].doseNumberPositiveInt == 1
    assert mmr["vaccineCode"] == {
        "coding": [
            {
                "system": "http://hl7.org/fhir/sid/cvx",
                "code": "03",
                "display": "measles, mumps and rubella virus vaccine",
            }
        ],
        "text": "MMR",
    }
    assert tbe["vaccineCode"] == {"text": "Tick-borne encephalitis"}
    assert tbe["occurrenceDateTime"] == "2021-05-06"
    assert tbe["protocolApplied"] == [{"doseNumberPositiveInt": 2}]


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("MMR", "03"),
        ("bcg", "19"),
        ("DTaP", "20"),
        ("Varicella", "21"),
        ("IPV", "10"),
        ("mmrv", "94"),
        ("TDAP", "115"),
        ("Hib", "17"),
        ("hepatitis B", "45"),
        ("HepB", "45"),
        ("Influenza", "88"),
        ("HPV", "137"),
        ("rotavirus", "122"),
        (" MMR ", "03"),
    ],
)
def test_a_vaccine_named_unambiguously_gets_its_cvx_code(name: str, code: str) -> None:
    concept = codes.vaccine_code(name)
    assert concept["text"] == name
    assert [(c["system"], c["code"]) for c in concept["coding"]] == [
        ("http://hl7.org/fhir/sid/cvx", code)
    ]


@pytest.mark.parametrize(
    "name",
    ["MMR booster", "measles", "Hep B", "flu", "DTaP-IPV", "polio", "BCG vaccine", "COVID-19"],
)
def test_any_other_vaccine_name_is_text_only(name: str) -> None:
    assert codes.vaccine_code(name) == {"text": name}


def test_allergies_and_chronic_conditions_round_trip_as_text() -> None:
    resources = card.card_resources(a_card(), NAMING)
    allergies = of_type(resources, "AllergyIntolerance")
    assert [a["code"] for a in allergies] == [{"text": "peanuts"}, {"text": "penicillin"}]
    for allergy in allergies:
        parsed = parsed_back(allergy)
        assert parsed.clinicalStatus.coding[0].code == "active"
        assert allergy["patient"] == {"reference": "Patient/child-1"}
    (condition,) = of_type(resources, "Condition")
    parsed_back(condition)
    assert condition["code"] == {"text": "asthma"}
    assert condition["subject"] == {"reference": "Patient/child-1"}
    assert condition["clinicalStatus"]["coding"][0]["code"] == "active"
    assert condition["category"][0]["coding"][0]["code"] == "problem-list-item"


def test_an_examination_round_trips_as_height_weight_and_findings() -> None:
    resources = card.card_resources(a_card(), NAMING)
    (height,) = observation_coded(resources, "8302-2")
    (weight,) = observation_coded(resources, "29463-7")
    (findings,) = observation_coded(resources, "29545-1")

    parsed = parsed_back(height)
    assert parsed.valueQuantity.value == Decimal("121.5")
    assert height["valueQuantity"] == {
        "value": 121.5,
        "unit": "cm",
        "system": "http://unitsofmeasure.org",
        "code": "cm",
    }
    assert height["category"][0]["coding"][0]["code"] == "vital-signs"
    assert parsed_back(weight).valueQuantity.value == Decimal(23)
    assert weight["valueQuantity"] == {
        "value": 23,
        "unit": "kg",
        "system": "http://unitsofmeasure.org",
        "code": "kg",
    }
    assert findings["valueString"] == "Healthy.\nNo complaints."
    assert findings["category"][0]["coding"][0]["code"] == "exam"
    for observation in (height, weight, findings):
        parsed_back(observation)
        assert observation["status"] == "final"
        assert observation["effectiveDateTime"] == "2026-11-30"
        assert observation["performer"] == [person("hospital-a/drwho")]
        assert observation["subject"] == {"reference": "Patient/child-1"}


def test_an_examination_records_only_what_was_measured() -> None:
    examination = an_examination(heightCm=None, weightKg=None)
    resources = card.card_resources(a_card(examinations=[examination]), NAMING)
    assert observation_coded(resources, "8302-2") == []
    assert observation_coded(resources, "29463-7") == []
    assert len(observation_coded(resources, "29545-1")) == 1


def test_the_cards_single_values_round_trip_as_observations() -> None:
    resources = card.card_resources(a_card(), NAMING)
    (blood,) = observation_coded(resources, "882-1")
    assert blood["valueCodeableConcept"] == {"text": "A Rh+"}  # no blood type the card takes
    assert blood["category"][0]["coding"][0]["code"] == "laboratory"
    (group,) = observation_coded(resources, "health-group")
    assert parsed_back(group).valueInteger == 2
    assert group["code"]["coding"][0]["system"] == "urn:healthledger:codes:card-item"
    (pe,) = observation_coded(resources, "physical-education-group")
    assert pe["valueCodeableConcept"] == {
        "coding": [
            {
                "system": "urn:healthledger:codes:pe-group",
                "code": "PREPARATORY",
                "display": "Preparatory",
            }
        ]
    }
    (notes,) = observation_coded(resources, "48767-8")
    assert notes["valueString"] == "Glasses for reading."
    for observation in (blood, group, pe, notes):
        parsed_back(observation)
        assert observation["status"] == "final"
        assert "performer" not in observation


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("A+", "278149003"),
        ("A-", "278152006"),
        ("B+", "278150003"),
        ("B-", "278153001"),
        ("AB+", "278151004"),
        ("AB-", "278154007"),
        ("O+", "278147001"),
        ("O-", "278148006"),
    ],
)
def test_each_blood_type_the_card_takes_has_its_snomed_ct_code(written: str, code: str) -> None:
    resources = card.card_resources(a_card(bloodType=written), NAMING)
    (blood,) = observation_coded(resources, "882-1")
    value = parsed_back(blood).valueCodeableConcept
    assert value.text == written
    (coded,) = value.coding
    assert (coded.system, coded.code) == ("http://snomed.info/sct", code)
    assert coded.display.startswith("Blood group ")


def test_an_empty_card_has_no_resources() -> None:
    assert card.card_resources(an_empty_card(), NAMING) == []


def test_an_instant_with_zero_microseconds_comes_back_as_written() -> None:
    written = "2026-12-07T10:11:12.000000Z"
    (allergy,) = card.card_resources(an_empty_card(allergies=["dust"], updatedAt=written), NAMING)
    assert allergy["meta"]["lastUpdated"] == written
    parsed = AllergyIntolerance.model_validate(allergy)
    assert parsed.meta is not None
    assert parsed.meta.lastUpdated == datetime(2026, 12, 7, 10, 11, 12, tzinfo=UTC)


def test_card_ids_are_deterministic_valid_and_distinct_for_equal_items() -> None:
    twice = a_card(
        allergies=["peanuts", "peanuts", "peanuts"],
        vaccinations=[{"vaccine": "MMR", "date": "2020-03-04", "dose": 1}] * 2,
        examinations=[an_examination(), an_examination()],
    )
    first = card.card_resources(twice, NAMING)
    again = card.card_resources(twice, NAMING)
    ids = [r["id"] for r in first]
    assert ids == [r["id"] for r in again]
    assert len(set(ids)) == len(ids)
    assert all(FHIR_ID.fullmatch(i) for i in ids)
    assert {i.split("-")[0] for i in ids} == {"imm", "allergy", "condition", "obs"}


def test_a_card_items_id_stays_while_the_item_does() -> None:
    before = card.card_resources(a_card(allergies=["peanuts"]), NAMING)
    after = card.card_resources(a_card(allergies=["peanuts", "dust"], notes="Changed."), NAMING)
    assert (
        of_type(before, "AllergyIntolerance")[0]["id"]
        == of_type(after, "AllergyIntolerance")[0]["id"]
    )
    assert (
        observation_coded(before, "8302-2")[0]["id"] == observation_coded(after, "8302-2")[0]["id"]
    )
    other_child = card.card_resources(a_card(childId="child-2", allergies=["peanuts"]), NAMING)
    assert (
        of_type(other_child, "AllergyIntolerance")[0]["id"]
        != of_type(before, "AllergyIntolerance")[0]["id"]
    )


# -- consents ------------------------------------------------------------------------------

CREATED = "2026-01-02T03:04:05.000006Z"
UPDATED = "2026-01-03T03:04:05.000006Z"
UNTIL = "2027-01-02T03:04:05.000006Z"


@pytest.mark.parametrize(
    ("status", "valid_until", "updated_at", "fhir_status", "end"),
    [
        ("PENDING", UNTIL, UPDATED, "proposed", UNTIL),
        ("ACTIVE", UNTIL, UPDATED, "active", UNTIL),
        ("ACTIVE", None, UPDATED, "active", None),
        ("EXPIRED", UNTIL, UPDATED, "inactive", UNTIL),
        ("REVOKED", UNTIL, UPDATED, "inactive", UPDATED),
        ("REVOKED", None, UPDATED, "inactive", UPDATED),
        ("REVOKED", UPDATED, UNTIL, "inactive", UPDATED),
    ],
)
def test_an_agreements_status_and_period_round_trip(
    status: str, valid_until: str | None, updated_at: str, fhir_status: str, end: str | None
) -> None:
    agreement = an_agreement(status=status, validUntil=valid_until, updatedAt=updated_at)
    resource = consents.agreement_consent(agreement, NAMING)
    parsed_back(resource)
    assert resource["status"] == fhir_status
    assert resource["provision"]["period"].get("start") == CREATED
    assert resource["provision"]["period"].get("end") == end


def test_an_agreement_round_trips_as_a_consent_of_its_guardian_for_its_doctor() -> None:
    agreement = an_agreement()
    resource = consents.agreement_consent(agreement, NAMING)
    parsed = parsed_back(resource)
    assert resource["id"] == agreement["id"]
    assert resource["identifier"] == [record(agreement["id"])]
    assert resource["patient"] == {"reference": "Patient/child-1"}
    assert resource["dateTime"] == CREATED
    assert parsed.scope.coding[0].code == "patient-privacy"
    assert resource["category"][0]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "59284-0",
        "display": "Consent Document",
    }
    assert resource["policyRule"]["coding"][0]["code"] == "OPTIN"
    assert resource["performer"] == [person("parents/mum")]
    provision = resource["provision"]
    assert provision["type"] == "permit"
    assert provision["actor"] == [
        {
            "role": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                        "code": "IRCP",
                        "display": "information recipient",
                    }
                ]
            },
            "reference": person("hospital-a/drwho"),
        }
    ]
    assert [(p["system"], p["code"]) for p in provision["purpose"]] == [
        ("http://terminology.hl7.org/CodeSystem/v3-ActReason", "TREAT")
    ]


def test_an_agreement_of_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status"):
        consents.agreement_consent(an_agreement(status="LOST"), NAMING)


@pytest.mark.parametrize(
    ("status", "fhir_status"),
    [("ACTIVE", "active"), ("EXPIRED", "inactive"), ("REVOKED", "inactive")],
)
def test_a_permissions_status_round_trips(status: str, fhir_status: str) -> None:
    resource = consents.permission_consent(a_report(), a_permission(status=status), None, NAMING)
    parsed_back(resource)
    assert resource["status"] == fhir_status


def test_a_withdrawn_permission_ends_when_it_was_withdrawn() -> None:
    revoked = a_permission(status="REVOKED", revokedAt="2026-07-01T09:00:00.000001Z")
    resource = consents.permission_consent(a_report(), revoked, None, NAMING)
    assert parsed_back(resource).status == "inactive"
    assert resource["provision"]["period"] == {
        "start": "2026-06-01T08:00:00.500000Z",
        "end": "2026-07-01T09:00:00.000001Z",
    }


def test_a_permission_round_trips_as_a_consent_for_the_school() -> None:
    report, permission = a_report(), a_permission()
    resource = consents.permission_consent(report, permission, ["mum", "dad"], NAMING)
    parsed_back(resource)
    assert FHIR_ID.fullmatch(resource["id"])
    assert resource["id"].startswith("permission-")
    assert resource["id"] == consents.permission_id(report["id"], "school-b")
    assert resource["id"] != consents.permission_id(report["id"], "school-c")
    assert resource["identifier"] == [record(report["id"])]
    assert resource["patient"] == {"reference": "Patient/child-1"}
    assert resource["dateTime"] == permission["grantedAt"]
    assert resource["performer"] == [person("parents/mum"), person("parents/dad")]
    provision = resource["provision"]
    assert provision["period"] == {
        "start": permission["grantedAt"],
        "end": permission["validUntil"],
    }
    assert provision["actor"][0]["reference"] == NAMING.organization("school-b")
    assert provision["actor"][0]["role"]["coding"][0]["code"] == "IRCP"
    assert provision["data"] == [
        {"meaning": "instance", "reference": {"reference": f"DocumentReference/{report['id']}"}}
    ]
    assert provision["purpose"] == [
        {
            "system": "urn:healthledger:codes:access-purpose",
            "code": "SCHOOL_ADMISSION",
            "display": "School admission",
        }
    ]


def test_a_permission_for_a_school_names_no_grantor() -> None:
    resource = consents.permission_consent(a_report(), a_permission(), None, NAMING)
    parsed_back(resource)
    assert "performer" not in resource


def test_a_permission_of_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status"):
        consents.permission_consent(a_report(), a_permission(status="PENDING"), None, NAMING)


# -- audit ---------------------------------------------------------------------------------


def test_an_access_entry_round_trips_as_an_audit_event() -> None:
    entry = an_entry()
    resource = audit.audit_event(entry, NAMING)
    parsed = parsed_back(resource)
    assert resource["id"] == entry["id"]
    assert resource["recorded"] == AT
    assert parsed.recorded == datetime(2026, 12, 7, 10, 11, 12, 123456, tzinfo=UTC)
    assert resource["type"]["code"] == "rest"
    assert resource["subtype"][0]["code"] == "read"
    assert resource["action"] == "R"
    assert resource["outcome"] == "0"
    assert "outcomeDesc" not in resource
    (agent,) = resource["agent"]
    assert agent["who"] == person("hospital-a/drwho")
    assert agent["requestor"] is True
    assert agent["type"]["coding"][0]["code"] == "IRCP"
    assert agent["role"] == [
        {
            "coding": [
                {"system": "urn:healthledger:codes:role", "code": "DOCTOR", "display": "Doctor"}
            ]
        }
    ]
    assert agent["purposeOfUse"] == resource["purposeOfEvent"]
    assert resource["source"] == {
        "site": NET,
        "observer": {
            "identifier": {"system": f"urn:healthledger:{NET}:server", "value": NET},
            "display": "healthledger",
        },
        "type": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                "code": "4",
                "display": "Application Server",
            }
        ],
    }
    child, read = resource["entity"]
    assert child["what"] == {"reference": "Patient/child-1"}
    assert (child["type"]["code"], child["role"]["code"]) == ("1", "1")
    assert read["what"] == {"identifier": record("child-1")}
    assert (read["type"]["code"], read["role"]["code"]) == ("2", "4")
    assert read["name"] == "MEDICAL_CARD"
    assert read["detail"] == [
        {"type": "version", "valueString": "4"},
        {"type": "blockNumber", "valueString": "17"},
    ]


@pytest.mark.parametrize(
    ("outcome", "what", "subtype", "action", "code"),
    [
        ("PERMITTED", "MEDICAL_CARD", "read", "R", "0"),
        ("PERMITTED", "CHILD", "read", "R", "0"),
        ("PERMITTED", "REPORT_CONTENT", "read", "R", "0"),
        ("PERMITTED", "CARD_HISTORY", "history-instance", "R", "0"),
        ("REFUSED", "MEDICAL_CARD", "read", "R", "4"),
        ("REFUSED", "CARD_HISTORY", "history-instance", "R", "4"),
        ("ERASED", "CHILD", "delete", "D", "0"),
    ],
)
def test_each_outcome_and_object_maps_to_its_interaction(
    outcome: str, what: str, subtype: str, action: str, code: str
) -> None:
    resource = audit.audit_event(an_entry(outcome=outcome, what=what), NAMING)
    parsed_back(resource)
    assert resource["subtype"] == [
        {"system": "http://hl7.org/fhir/restful-interaction", "code": subtype, "display": subtype}
    ]
    assert (resource["action"], resource["outcome"]) == (action, code)
    assert resource.get("outcomeDesc") == ("Refused" if outcome == "REFUSED" else None)
    assert resource["entity"][1]["name"] == what


@pytest.mark.parametrize(
    ("purpose", "standard"),
    [
        ("TREATMENT", "TREAT"),
        ("EMERGENCY", "ETREAT"),
        ("ADMINISTRATION", "HOPERAT"),
        ("GUARDIAN", None),
        ("SCHOOL_ADMISSION", None),
    ],
)
def test_each_purpose_carries_its_standard_code_if_any_and_always_the_local_one(
    purpose: str, standard: str | None
) -> None:
    resource = audit.audit_event(an_entry(purpose=purpose), NAMING)
    parsed_back(resource)
    expected = (
        []
        if standard is None
        else [("http://terminology.hl7.org/CodeSystem/v3-ActReason", standard)]
    )
    expected.append(("urn:healthledger:codes:access-purpose", purpose))
    (concept,) = resource["purposeOfEvent"]
    assert [(c["system"], c["code"]) for c in concept["coding"]] == expected
    assert resource["agent"][0]["purposeOfUse"] == [concept]


@pytest.mark.parametrize(
    ("role", "org", "code"),
    [
        ("parent", "parents", "PARENT"),
        ("school", "school-b", "SCHOOL"),
        ("admin", "hospital-a", "ADMIN"),
    ],
)
def test_a_reader_is_named_with_the_organisation_the_entry_gives(
    role: str, org: str, code: str
) -> None:
    resource = audit.audit_event(
        an_entry(readerUid="someone", readerOrg=org, readerRole=role), NAMING
    )
    parsed_back(resource)
    (agent,) = resource["agent"]
    assert agent["who"] == person(f"{org}/someone")
    assert agent["role"][0]["coding"][0]["code"] == code


def test_the_server_as_reader_is_named_healthledger_and_is_no_requestor() -> None:
    entry = an_entry(
        readerUid="healthledger",
        readerOrg="",
        readerRole="server",
        what="CHILD",
        outcome="ERASED",
        purpose="ADMINISTRATION",
        version=None,
    )
    resource = audit.audit_event(entry, NAMING)
    parsed_back(resource)
    (agent,) = resource["agent"]
    assert agent["who"] == {"display": "healthledger"}
    assert agent["requestor"] is False
    assert agent["role"][0]["coding"][0]["code"] == "SERVER"
    assert resource["entity"][1]["detail"] == [{"type": "blockNumber", "valueString": "17"}]


@pytest.mark.parametrize(
    "change",
    [{"what": "SECRETS"}, {"outcome": "MAYBE"}, {"purpose": "CURIOSITY"}, {"readerRole": "nurse"}],
)
def test_an_entry_the_log_cannot_hold_is_refused(change: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="not a"):
        audit.audit_event(an_entry(**change), NAMING)


# -- documents -----------------------------------------------------------------------------


def test_a_report_round_trips_as_a_document_reference() -> None:
    report = a_report()
    resource = documents.report_document(report, NAMING)
    parsed = parsed_back(resource)
    assert resource["id"] == report["id"]
    assert resource["identifier"] == [record(report["id"])]
    assert (resource["status"], resource["docStatus"]) == ("current", "final")
    assert resource["type"]["coding"][0] == {
        "system": "urn:healthledger:codes:document-type",
        "code": "school-health-report",
        "display": "Health report for school admission",
    }
    assert resource["subject"] == {"reference": "Patient/child-1"}
    assert resource["date"] == report["createdAt"]
    assert resource["author"] == [person("hospital-a/drwho")]
    assert resource["description"] == "Health report for school admission"

    # The content as the plain JSON values it is stored as.
    canonical = rfc8785.dumps(json.loads(json.dumps(report["content"])))
    content, conclusion = resource["content"]
    assert content["attachment"]["contentType"] == "application/json"
    assert content["attachment"]["title"] == "Health report"
    assert content["attachment"]["creation"] == report["createdAt"]
    assert base64.b64decode(content["attachment"]["data"]) == canonical
    assert parsed.content[0].attachment.data == canonical
    assert json.loads(parsed.content[0].attachment.data) == report["content"]
    assert conclusion["attachment"]["contentType"] == "text/plain; charset=utf-8"
    assert conclusion["attachment"]["title"] == "Conclusion"
    assert parsed.content[1].attachment.data.decode() == "Fit for school; «no» restrictions."


def test_a_report_without_its_content_is_refused() -> None:
    with pytest.raises(ValueError, match="only with its content"):
        documents.report_document(a_report(content=None), NAMING)


# -- bundles -------------------------------------------------------------------------------


def test_a_searchset_lists_each_resource_under_its_full_url() -> None:
    resources = [
        patient.patient_of(a_child(id="child-1"), NAMING),
        *card.card_resources(a_card(), NAMING),
        documents.report_document(a_report(), NAMING),
    ]
    bundle = bundles.searchset(
        resources,
        NAMING,
        self_url=f"{BASE}/AuditEvent?patient=child-1",
        next_url=f"{BASE}/AuditEvent?patient=child-1&_cursor=abc",
        total=99,
    )
    parsed = parsed_back(bundle)
    assert bundle["type"] == "searchset"
    assert re.fullmatch(r"[0-9a-f]{32}", bundle["id"])
    assert bundle["total"] == 99
    assert bundle["link"] == [
        {"relation": "self", "url": f"{BASE}/AuditEvent?patient=child-1"},
        {"relation": "next", "url": f"{BASE}/AuditEvent?patient=child-1&_cursor=abc"},
    ]
    assert [e["resource"] for e in bundle["entry"]] == resources
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"{BASE}/{resource['resourceType']}/{resource['id']}"
        assert entry["search"] == {"mode": "match"}
    assert [type(e.resource).__name__ for e in parsed.entry] == [
        r["resourceType"] for r in resources
    ]
    made = datetime.strptime(bundle["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - made).total_seconds()) < 60


def test_a_searchset_without_next_page_or_total_says_neither() -> None:
    bundle = bundles.searchset([], NAMING, self_url=f"{BASE}/Consent?patient=child-1")
    parsed_back(bundle)
    assert bundle["link"] == [{"relation": "self", "url": f"{BASE}/Consent?patient=child-1"}]
    assert "total" not in bundle
    assert "entry" not in bundle
    other = bundles.searchset([], NAMING, self_url=f"{BASE}/Consent?patient=child-1")
    assert other["id"] != bundle["id"]


@pytest.mark.parametrize("code", sorted(bundles.ISSUE_CODES))
def test_an_operation_outcome_carries_the_issue_type_and_the_sentence(code: str) -> None:
    resource = bundles.operation_outcome(code, "No such child is visible to you.")
    parsed_back(resource)
    assert resource["issue"] == [
        {"severity": "error", "code": code, "diagnostics": "No such child is visible to you."}
    ]


def test_an_operation_outcome_of_another_issue_type_is_refused() -> None:
    with pytest.raises(ValueError, match="issue type"):
        bundles.operation_outcome("informational", "Fine.")


# -- validation ----------------------------------------------------------------------------


def test_a_resource_its_model_does_not_parse_is_refused() -> None:
    with pytest.raises(ValidationError):
        validated(Patient, {"resourceType": "Patient", "id": "child 1"})
    with pytest.raises(ValidationError):
        validated(Patient, {"resourceType": "Patient", "id": "child-1", "nickname": "Annie"})
    with pytest.raises(ValueError, match="not a Patient"):
        validated(Patient, {"resourceType": "Observation", "id": "child-1"})
    with pytest.raises(ValueError, match="not a Patient"):
        validated(Patient, {"id": "child-1"})


# -- any text the contracts accept ---------------------------------------------------------


def accepted(raw: str) -> str | None:
    try:
        return validation.text(raw, "entry")
    except BadInputError:
        return None


entries = st.text(min_size=1, max_size=60).map(accepted).filter(lambda t: t is not None)


@settings(max_examples=60, deadline=None)
@given(
    allergies=st.lists(entries, max_size=4),
    conditions=st.lists(entries, max_size=4),
    vaccines=st.lists(entries, max_size=4),
    child_id=st.from_regex(r"child-[A-Za-z0-9]{1,40}", fullmatch=True),
)
def test_any_text_the_contracts_accept_round_trips_into_code_text(
    allergies: list[str], conditions: list[str], vaccines: list[str], child_id: str
) -> None:
    vaccinations: list[Vaccination] = [
        {"vaccine": name, "date": "2020-01-01", "dose": 1} for name in vaccines
    ]
    resources = card.card_resources(
        a_card(
            childId=child_id,
            allergies=allergies,
            chronicConditions=conditions,
            vaccinations=vaccinations,
        ),
        NAMING,
    )
    for resource in resources:
        parsed_back(resource)
        assert FHIR_ID.fullmatch(resource["id"])
    assert [r["code"]["text"] for r in of_type(resources, "AllergyIntolerance")] == allergies
    assert [r["code"]["text"] for r in of_type(resources, "Condition")] == conditions
    assert [r["vaccineCode"]["text"] for r in of_type(resources, "Immunization")] == vaccines
    assert len({r["id"] for r in resources}) == len(resources)
