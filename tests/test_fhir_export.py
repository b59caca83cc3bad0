"""The FHIR export through the gateway, on every backend, with real enrolled identities.

The story runs as users would run it, then each caller exports the child: every Bundle
holds what that caller may read and nothing more, every resource in it parses back with
its R4B model without losing an element, and the fields come back as the ledger holds
them. An export is refused as the reads it is made of are (readChild's sentence), and
each of its reads is in the child's access log like the same GraphQL read.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import rfc8785
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from authz import provision
from authz.access import ChannelAccess
from authz.directory import NetworkDirectory
from authz.identity import Identity
from authz.network import load_network
from chaincode.gateway import Gateway
from chaincode.testing import fresh_keyrings
from domain.errors import NotFoundError
from fhir_export.export import FhirExport, naming_of
from fhir_export.naming import Naming
from ledger_backends import Ledger, open_ledger
from ledger_backends.keystores import open_key_store
from ledger_backends.records import format_timestamp, parse_timestamp, utc_now
from tests.networks import NetworkFixture, make_network

BASE_URL = "https://ledger.example:8443/fhir"
NOT_VISIBLE = "No such child is visible to you."
VACCINATIONS = [
    {"vaccine": "MMR", "date": "2020-04-01", "dose": 1},
    {"vaccine": "Tick-borne encephalitis", "date": "2021-05-02", "dose": 2},
]
EXAMINATION = {"date": "2024-09-01", "heightCm": 110.5, "weightKg": 19.25, "findings": "Healthy."}
CARD_PATCH = {
    "bloodType": "A+",
    "allergies": ["peanuts"],
    "chronicConditions": ["asthma"],
    "vaccinations": VACCINATIONS,
    "examinations": [EXAMINATION],
    "healthGroup": 2,
    "physicalEducationGroup": "PREPARATORY",
    "notes": "Not for the school.",
}
CONCLUSION = "Fit for school; keep away from peanuts."


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    made = make_network(tmp_path_factory.mktemp("fhir-export") / "network")
    provision.enroll(made.directory, org="parents", uid="carol", role="parent", name="Carol")
    provision.enroll(made.directory, org="hospital", uid="dr-wilson", role="doctor", name="Wilson")
    return made


@dataclass
class World:
    gateway: Gateway
    export: FhirExport
    naming: Naming
    people: dict[str, Identity]

    def __getitem__(self, uid: str) -> Identity:
        return self.people[uid]


@dataclass(frozen=True)
class Story:
    child: str
    house_agreement: dict[str, Any]
    quinn_agreement: dict[str, Any]
    report: dict[str, Any]


@pytest.fixture
def world(net: NetworkFixture, ledger_url: str) -> Iterator[World]:
    network = load_network(net.directory)
    ledger: Ledger = open_ledger(ledger_url, batch_timeout_ms=1)
    keys = open_key_store(ledger_url, same_database_as_ledger=True)
    directory = NetworkDirectory(network)
    gateway = Gateway(
        {name: ledger.channel(name) for name in ("medical", "report")},
        ChannelAccess(network),
        directory,
        keyrings=fresh_keyrings("medical", "report", store=keys),
    )
    naming = naming_of(network.network_id, BASE_URL, directory)
    yield World(gateway, FhirExport(gateway), naming, net.identities())
    asyncio.run(gateway.settle())
    keys.close()
    ledger.close()


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def _in_days(days: int) -> str:
    return format_timestamp(utc_now() + timedelta(days=days))


async def _story(world: World) -> Story:
    """Ada, with guardians alice and bob; dr-house's agreement ACTIVE until a date, dr-quinn's
    revoked; a full card; a report school-a asked for, permitted to school-a, and permitted
    to school-b until alice withdrew it."""
    gw, alice, bob = world.gateway, world["alice"], world["bob"]
    house, school_a = world["dr-house"], world["school-a-office"]
    child = await gw.submit(
        alice,
        "medical",
        "registerChild",
        {
            "fullName": "Ada Martin",
            "birthDate": "2019-04-02",
            "sex": "girl",
            "otherGuardians": ["bob"],
        },
    )
    await gw.submit(bob, "medical", "acceptGuardianship", {"childId": child["id"]})
    signed = await gw.submit(
        alice,
        "medical",
        "signAgreement",
        {"childId": child["id"], "doctorUid": "dr-house", "validUntil": _in_days(300)},
    )
    house_agreement = await gw.submit(house, "medical", "acceptAgreement", {"id": signed["id"]})
    signed = await gw.submit(
        alice, "medical", "signAgreement", {"childId": child["id"], "doctorUid": "dr-quinn"}
    )
    quinn_agreement = await gw.submit(alice, "medical", "revokeAgreement", {"id": signed["id"]})
    await gw.submit(
        house,
        "medical",
        "updateMedicalCard",
        {"childId": child["id"], "expectedVersion": 1, "patch": CARD_PATCH},
    )
    admission = await gw.create_admission_request(bob, child["id"], "school-a")
    await gw.submit(school_a, "report", "acceptAdmissionRequest", {"id": admission["id"]})
    request = await gw.create_report_request(school_a, admission["id"])
    report = await gw.create_report(house, request["id"], CONCLUSION)
    await gw.submit(
        alice,
        "report",
        "approveReport",
        {"id": report["id"], "schools": ["school-a", "school-b"], "validUntil": _in_days(60)},
    )
    report = await gw.submit(
        alice, "report", "revokeReportPermission", {"id": report["id"], "school": "school-b"}
    )
    return Story(child["id"], house_agreement, quinn_agreement, report)


# -- reading Bundles back -------------------------------------------------------------------------


def _same(original: Any, parsed: Any) -> bool:
    """Whether the parsed model's JSON holds every element of the original, as written: an
    instant may come back shortened ("...01.000000Z" as "...01Z"), never changed."""
    if isinstance(original, dict):
        return (
            isinstance(parsed, dict)
            and set(original) == set(parsed)
            and all(_same(original[key], parsed[key]) for key in original)
        )
    if isinstance(original, list):
        return (
            isinstance(parsed, list)
            and len(original) == len(parsed)
            and all(_same(a, b) for a, b in zip(original, parsed, strict=True))
        )
    if isinstance(original, str) and isinstance(parsed, str) and original != parsed:
        try:
            return parse_timestamp(original) == parse_timestamp(parsed)
        except ValueError:
            return False
    return bool(original == parsed) and type(original) is type(parsed)


def resources_of(world: World, bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources of a searchset Bundle, each parsed back by its R4B model without loss,
    and its fullUrl checked."""
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    resources = []
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        model = get_fhir_model_class(resource["resourceType"])
        parsed = model.model_validate(resource).model_dump(mode="json", exclude_none=True)
        assert _same(resource, parsed), resource
        assert entry["fullUrl"] == world.naming.full_url(resource["resourceType"], resource["id"])
        resources.append(resource)
    return resources


def by_type(resources: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        found.setdefault(resource["resourceType"], []).append(resource)
    return found


def counts(resources: list[dict[str, Any]]) -> dict[str, int]:
    return {kind: len(found) for kind, found in by_type(resources).items()}


def codes_of(concept: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept.get("coding", [])}


def moment(text: str) -> datetime:
    return parse_timestamp(text)


def access_log(world: World, child: str) -> list[dict[str, Any]]:
    """The child's whole access log as alice lists it, refused reads recorded first."""
    run(world.gateway.settle())
    page = run(world.gateway.list_access_log(world["alice"], child, 200))
    assert not page["hasMore"]
    return [entry["item"] for entry in page["entries"]]


def reads_by(world: World, child: str, uid: str) -> set[tuple[str, str, str]]:
    """(what, purpose, outcome) of each entry of the child's access log that `uid` made."""
    return {
        (entry["what"], entry["purpose"], entry["outcome"])
        for entry in access_log(world, child)
        if entry["readerUid"] == uid
    }


def named(world: World, uid: str, org: str) -> dict[str, Any]:
    """A reference to the person ORG/UID as the export names them."""
    return world.naming.person(uid, "", org=org)


# -- who gets what --------------------------------------------------------------------------------


def test_a_guardian_exports_the_whole_record_and_every_resource_parses_back(
    world: World,
) -> None:
    story = run(_story(world))
    for guardian in ("alice", "bob"):
        bundle = run(world.export.everything(world[guardian], story.child, world.naming))
        resources = resources_of(world, bundle)
        assert resources[0]["resourceType"] == "Patient"
        assert counts(resources) == {
            "Patient": 1,
            "Immunization": 2,
            "AllergyIntolerance": 1,
            "Condition": 1,
            # Height, weight, findings; blood type, health group, PE group, notes.
            "Observation": 7,
            # Two agreements, two schools' permissions.
            "Consent": 4,
            "DocumentReference": 1,
        }
        assert bundle["total"] == len(resources)
        (link,) = bundle["link"]
        assert link == {"relation": "self", "url": f"{BASE_URL}/Patient/{story.child}/$everything"}
        ids = [resource["id"] for resource in resources]
        assert len(set(ids)) == len(ids)


def test_every_field_comes_back_as_the_ledger_holds_it(world: World) -> None:
    story = run(_story(world))
    bundle = run(world.export.everything(world["alice"], story.child, world.naming))
    found = by_type(resources_of(world, bundle))

    (patient,) = found["Patient"]
    assert patient["id"] == story.child
    assert patient["identifier"] == [world.naming.child_identifier(story.child)]
    assert patient["name"] == [{"text": "Ada Martin"}]
    assert (patient["birthDate"], patient["gender"], patient["active"]) == (
        "2019-04-02",
        "female",
        True,
    )
    assert patient["generalPractitioner"] == [named(world, "dr-house", "hospital")]
    assert [c["name"]["text"] for c in patient["contact"]] == ["parents/alice", "parents/bob"]

    subject = {"reference": f"Patient/{story.child}"}
    mmr, tick = found["Immunization"]
    assert mmr["vaccineCode"]["text"] == "MMR"
    assert codes_of(mmr["vaccineCode"]) == {("http://hl7.org/fhir/sid/cvx", "03")}
    assert tick["vaccineCode"] == {"text": "Tick-borne encephalitis"}
    for immunization, given in zip((mmr, tick), VACCINATIONS, strict=True):
        parsed = get_fhir_model_class("Immunization").model_validate(immunization)
        assert parsed.occurrenceDateTime == date.fromisoformat(str(given["date"]))
        assert parsed.protocolApplied[0].doseNumberPositiveInt == given["dose"]
        assert (immunization["status"], immunization["patient"]) == ("completed", subject)

    (allergy,) = found["AllergyIntolerance"]
    assert (allergy["code"], allergy["patient"]) == ({"text": "peanuts"}, subject)
    (condition,) = found["Condition"]
    assert (condition["code"], condition["subject"]) == ({"text": "asthma"}, subject)

    observations = {next(iter(codes_of(o["code"])))[1]: o for o in found["Observation"]}
    height, weight = observations["8302-2"], observations["29463-7"]
    assert height["valueQuantity"] == {
        "value": 110.5,
        "unit": "cm",
        "system": "http://unitsofmeasure.org",
        "code": "cm",
    }
    assert (weight["valueQuantity"]["value"], weight["valueQuantity"]["code"]) == (19.25, "kg")
    assert observations["29545-1"]["valueString"] == "Healthy."
    for examined in (height, weight, observations["29545-1"]):
        assert examined["effectiveDateTime"] == "2024-09-01"
        assert examined["performer"] == [named(world, "dr-house", "hospital")]
    assert observations["882-1"]["valueCodeableConcept"]["coding"][0]["code"] == "278149003"
    assert observations["health-group"]["valueInteger"] == 2
    assert codes_of(observations["physical-education-group"]["valueCodeableConcept"]) == {
        ("urn:healthledger:codes:pe-group", "PREPARATORY")
    }
    assert observations["48767-8"]["valueString"] == "Not for the school."
    assert all(o["status"] == "final" and o["subject"] == subject for o in found["Observation"])

    consents = {consent["id"]: consent for consent in found["Consent"]}
    house = consents[story.house_agreement["id"]]
    assert house["status"] == "active"
    assert moment(house["dateTime"]) == moment(story.house_agreement["createdAt"])
    assert moment(house["provision"]["period"]["start"]) == moment(
        story.house_agreement["createdAt"]
    )
    assert moment(house["provision"]["period"]["end"]) == moment(
        story.house_agreement["validUntil"]
    )
    assert house["performer"] == [named(world, "alice", "parents")]
    assert house["provision"]["actor"][0]["reference"] == named(world, "dr-house", "hospital")
    quinn = consents[story.quinn_agreement["id"]]
    assert quinn["status"] == "inactive"
    # Revoked without an end of its own: it stopped permitting when it was withdrawn.
    assert moment(quinn["provision"]["period"]["end"]) == moment(story.quinn_agreement["updatedAt"])
    permissions = {
        consent["provision"]["actor"][0]["reference"]["display"]: consent
        for consent in found["Consent"]
        if consent["id"].startswith("permission-")
    }
    assert {school: c["status"] for school, c in permissions.items()} == {
        "school-a": "active",
        "school-b": "inactive",
    }
    shown = {p["school"]: p for p in story.report["permissions"]}
    assert shown["school-b"]["revokedAt"] is not None
    for school, consent in permissions.items():
        period = consent["provision"]["period"]
        assert moment(period["start"]) == moment(shown[school]["grantedAt"])
        # school-b's ended when alice withdrew it, before its validUntil.
        ended = shown[school]["revokedAt"] or shown[school]["validUntil"]
        assert moment(period["end"]) == moment(ended)
        assert consent["provision"]["data"] == [
            {
                "meaning": "instance",
                "reference": {"reference": f"DocumentReference/{story.report['id']}"},
            }
        ]
        assert consent["performer"] == [
            named(world, "alice", "parents"),
            named(world, "bob", "parents"),
        ]

    (document,) = found["DocumentReference"]
    assert document["id"] == story.report["id"]
    assert moment(document["date"]) == moment(story.report["createdAt"])
    assert document["author"] == [named(world, "dr-house", "hospital")]
    content, conclusion = (c["attachment"] for c in document["content"])
    assert base64.b64decode(content["data"]) == rfc8785.dumps(story.report["content"])
    assert base64.b64decode(conclusion["data"]).decode() == CONCLUSION


def test_the_doctor_of_an_active_agreement_exports_its_own_agreement_and_reports(
    world: World,
) -> None:
    story = run(_story(world))
    bundle = run(world.export.everything(world["dr-house"], story.child, world.naming))
    resources = resources_of(world, bundle)
    found = by_type(resources)
    assert counts(resources) == {
        "Patient": 1,
        "Immunization": 2,
        "AllergyIntolerance": 1,
        "Condition": 1,
        "Observation": 7,
        # Its own agreement (not dr-quinn's); the permissions of the report it wrote.
        "Consent": 3,
        "DocumentReference": 1,
    }
    assert len(resources) == bundle["total"]
    agreements = [c for c in found["Consent"] if not c["id"].startswith("permission-")]
    assert [c["id"] for c in agreements] == [story.house_agreement["id"]]
    assert [d["id"] for d in found["DocumentReference"]] == [story.report["id"]]
    # A doctor sees only themselves as the child's doctor.
    assert found["Patient"][0]["generalPractitioner"] == [named(world, "dr-house", "hospital")]


def test_a_doctor_in_an_emergency_exports_the_child_and_its_card_only(world: World) -> None:
    story = run(_story(world))
    wilson = world["dr-wilson"]
    with pytest.raises(NotFoundError, match=NOT_VISIBLE):
        run(world.export.everything(wilson, story.child, world.naming))
    run(
        world.gateway.submit(
            wilson,
            "medical",
            "openEmergencyAccess",
            {"childId": story.child, "reason": "Brought in unconscious after a fall at school."},
        )
    )
    bundle = run(world.export.everything(wilson, story.child, world.naming))
    resources = resources_of(world, bundle)
    assert counts(resources) == {
        "Patient": 1,
        "Immunization": 2,
        "AllergyIntolerance": 1,
        "Condition": 1,
        "Observation": 7,
    }
    assert "generalPractitioner" not in resources[0]
    assert reads_by(world, story.child, "dr-wilson") == {
        ("CHILD", "TREATMENT", "REFUSED"),
        ("CHILD", "EMERGENCY", "PERMITTED"),
        ("MEDICAL_CARD", "EMERGENCY", "PERMITTED"),
    }


@pytest.mark.parametrize("export", ["everything", "consents"])
def test_those_who_may_not_read_the_child_are_told_it_does_not_exist(
    world: World, export: str
) -> None:
    story = run(_story(world))
    # Another family's parent, a doctor whose agreement was revoked, a doctor without any,
    # the hospital's administrator.
    for uid in ("carol", "dr-quinn", "dr-wilson", "hospital-admin"):
        with pytest.raises(NotFoundError) as refused:
            run(getattr(world.export, export)(world[uid], story.child, world.naming))
        assert str(refused.value) == NOT_VISIBLE, uid
    with pytest.raises(NotFoundError, match=NOT_VISIBLE):
        run(world.export.everything(world["alice"], "child-unknown", world.naming))


def test_a_permitted_school_exports_the_child_s_name_and_its_report_only(world: World) -> None:
    story = run(_story(world))
    bundle = run(world.export.everything(world["school-a-office"], story.child, world.naming))
    resources = resources_of(world, bundle)
    found = by_type(resources)
    assert counts(resources) == {
        "Patient": 1,
        "Consent": 1,
        "DocumentReference": 1,
    }
    (patient,) = found["Patient"]
    assert patient == {
        "resourceType": "Patient",
        "id": story.child,
        "identifier": [world.naming.child_identifier(story.child)],
        "name": [{"text": "Ada Martin"}],
    }
    (permission,) = found["Consent"]
    assert permission["provision"]["actor"][0]["reference"]["display"] == "school-a"
    # A school is not told who the guardians are.
    assert "performer" not in permission
    (document,) = found["DocumentReference"]
    assert base64.b64decode(document["content"][0]["attachment"]["data"]) == rfc8785.dumps(
        story.report["content"]
    )


def test_a_school_whose_permission_ended_or_never_was_is_told_the_child_does_not_exist(
    world: World,
) -> None:
    story = run(_story(world))
    school_a, school_b = world["school-a-office"], world["school-b-office"]
    with pytest.raises(NotFoundError, match=NOT_VISIBLE):
        run(world.export.everything(school_b, story.child, world.naming))
    run(
        world.gateway.submit(
            world["alice"],
            "report",
            "revokeReportPermission",
            {"id": story.report["id"], "school": "school-a"},
        )
    )
    # school-a asked for the report and still sees it, but may no longer read it.
    with pytest.raises(NotFoundError, match=NOT_VISIBLE):
        run(world.export.everything(school_a, story.child, world.naming))
    with pytest.raises(NotFoundError, match=NOT_VISIBLE):
        run(world.export.everything(school_a, "child-unknown", world.naming))


def test_consents_are_what_each_caller_may_see_of_them(world: World) -> None:
    story = run(_story(world))

    def consents(uid: str, child: str = story.child) -> list[dict[str, Any]]:
        bundle = run(world.export.consents(world[uid], child, world.naming))
        assert bundle["link"] == [
            {"relation": "self", "url": f"{BASE_URL}/Consent?patient={child}"}
        ]
        resources = resources_of(world, bundle)
        assert bundle["total"] == len(resources)
        assert {r["resourceType"] for r in resources} <= {"Consent"}
        return resources

    permission_a, permission_b = sorted(
        (c for c in consents("alice") if c["id"].startswith("permission-")),
        key=lambda c: c["provision"]["actor"][0]["reference"]["display"],
    )
    assert {c["id"] for c in consents("alice")} == {
        story.house_agreement["id"],
        story.quinn_agreement["id"],
        permission_a["id"],
        permission_b["id"],
    }
    assert consents("bob") == consents("alice")
    assert {c["id"] for c in consents("dr-house")} == {
        story.house_agreement["id"],
        permission_a["id"],
        permission_b["id"],
    }
    (own,) = consents("school-a-office")
    assert own["id"] == permission_a["id"] and "performer" not in own
    # No permission, no Consent, and no refusal either: a school never learns whether a
    # child exists.
    assert consents("school-b-office") == []
    assert consents("school-a-office", "child-unknown") == []


# -- the access log ----------------------------------------------------------------------------


def test_an_export_is_in_the_access_log_as_the_reads_it_is_made_of(world: World) -> None:
    story = run(_story(world))
    before = {entry["id"] for entry in access_log(world, story.child)}
    for uid in ("bob", "dr-house", "school-a-office", "carol"):
        with_refusal = uid == "carol"
        try:
            run(world.export.everything(world[uid], story.child, world.naming))
        except NotFoundError:
            assert with_refusal, uid
    added = [entry for entry in access_log(world, story.child) if entry["id"] not in before]
    made = {(e["readerUid"], e["what"], e["recordId"], e["purpose"], e["outcome"]) for e in added}
    child, report = story.child, story.report["id"]
    assert made == {
        ("bob", "CHILD", child, "GUARDIAN", "PERMITTED"),
        ("bob", "MEDICAL_CARD", child, "GUARDIAN", "PERMITTED"),
        ("bob", "REPORT_CONTENT", report, "GUARDIAN", "PERMITTED"),
        ("dr-house", "CHILD", child, "TREATMENT", "PERMITTED"),
        ("dr-house", "MEDICAL_CARD", child, "TREATMENT", "PERMITTED"),
        ("dr-house", "REPORT_CONTENT", report, "TREATMENT", "PERMITTED"),
        ("school-a-office", "REPORT_CONTENT", report, "SCHOOL_ADMISSION", "PERMITTED"),
        ("carol", "CHILD", child, "GUARDIAN", "REFUSED"),
    }
    card_reads = [e for e in added if e["what"] == "MEDICAL_CARD"]
    assert {e["version"] for e in card_reads} == {2}


def test_the_access_log_pages_as_audit_events_for_guardians_only(world: World) -> None:
    story = run(_story(world))
    for uid in ("dr-house", "alice"):
        run(world.export.everything(world[uid], story.child, world.naming))
    entries = access_log(world, story.child)
    # The card the report was made from, then three reads of each export: pages 2, 2, 2, 1.
    assert len(entries) == 7

    def page(after: str | None) -> dict[str, Any]:
        return run(
            world.export.audit_events(
                world["alice"],
                story.child,
                2,
                after,
                world.naming,
                self_url=f"{BASE_URL}/AuditEvent?page={after}",
                next_url_of=lambda position: f"{BASE_URL}/AuditEvent?after={position}",
            )
        )

    events: list[dict[str, Any]] = []
    after = None
    while True:
        bundle = page(after)
        found = resources_of(world, bundle)
        assert 1 <= len(found) <= 2 and "total" not in bundle
        events += found
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert links["self"] == f"{BASE_URL}/AuditEvent?page={after}"
        if "next" not in links:
            break
        after = links["next"].split("after=", 1)[1]
    assert [event["id"] for event in events] == [entry["id"] for entry in entries]

    event, entry = next(
        (event, entry)
        for event, entry in zip(events, entries, strict=True)
        if entry["what"] == "MEDICAL_CARD" and entry["readerUid"] == "dr-house"
    )
    assert moment(event["recorded"]) == moment(entry["at"])
    assert (event["action"], event["outcome"]) == ("R", "0")
    assert codes_of({"coding": event["subtype"]}) == {
        ("http://hl7.org/fhir/restful-interaction", "read")
    }
    (agent,) = event["agent"]
    assert agent["who"] == named(world, "dr-house", "hospital") and agent["requestor"] is True
    assert codes_of(event["purposeOfEvent"][0]) == {
        ("http://terminology.hl7.org/CodeSystem/v3-ActReason", "TREAT"),
        ("urn:healthledger:codes:access-purpose", "TREATMENT"),
    }
    patient, record = event["entity"]
    assert patient["what"] == {"reference": f"Patient/{story.child}"}
    assert record["what"]["identifier"] == world.naming.record_identifier(story.child)
    assert record["name"] == "MEDICAL_CARD"
    assert {d["type"]: d["valueString"] for d in record["detail"]} == {
        "version": "2",
        "blockNumber": str(entry["blockNumber"]),
    }
    assert event["source"]["site"] == world.naming.network_id

    for uid in ("dr-house", "carol", "hospital-admin"):
        with pytest.raises(NotFoundError, match=NOT_VISIBLE):
            run(
                world.export.audit_events(
                    world[uid],
                    story.child,
                    50,
                    None,
                    world.naming,
                    self_url=BASE_URL,
                    next_url_of=str,
                )
            )


def test_an_erased_child_exports_nothing_but_its_erasure(world: World) -> None:
    story = run(_story(world))
    receipt = run(world.gateway.erase_child(world["alice"], story.child, "Ada Martin"))
    erased = f"This child's records were erased on {receipt['erasedAt'][:10]}."
    for uid in ("alice", "bob"):
        with pytest.raises(NotFoundError) as refused:
            run(world.export.everything(world[uid], story.child, world.naming))
        assert str(refused.value) == erased
    for uid in ("dr-house", "carol"):
        with pytest.raises(NotFoundError, match=NOT_VISIBLE):
            run(world.export.everything(world[uid], story.child, world.naming))
    for uid in ("school-a-office", "school-b-office"):
        with pytest.raises(NotFoundError, match=NOT_VISIBLE):
            run(world.export.everything(world[uid], story.child, world.naming))
        assert run(world.export.consents(world[uid], story.child, world.naming))["total"] == 0

    bundle = run(
        world.export.audit_events(
            world["alice"],
            story.child,
            50,
            None,
            world.naming,
            self_url=BASE_URL,
            next_url_of=str,
        )
    )
    events = resources_of(world, bundle)
    # What is left in clear: the erasure, once on each channel.
    assert len(events) == 2
    for event in events:
        assert event["action"] == "D" and event["outcome"] == "0"
        assert codes_of({"coding": event["subtype"]}) == {
            ("http://hl7.org/fhir/restful-interaction", "delete")
        }
        assert event["agent"][0]["who"] == named(world, "alice", "parents")
