"""The codes the export uses: local code systems where no standard code fits, and each
standard code with its display.

Standard codes were checked against public material (LOINC and HL7 terminology as FHIR
examples and implementation guides use them; CVX against copies of the CDC table). A
code that could not be confirmed is not used: a vaccine whose name is not in `CVX`
carries its name as text only.
"""

from __future__ import annotations

from typing import Any

# -- code systems -------------------------------------------------------------------------

LOINC = "http://loinc.org"
SNOMED_CT = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
CVX_SYSTEM = "http://hl7.org/fhir/sid/cvx"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
AUDIT_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SECURITY_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"

CARD_ITEM = "urn:healthledger:codes:card-item"
PE_GROUP = "urn:healthledger:codes:pe-group"
ACCESS_PURPOSE = "urn:healthledger:codes:access-purpose"
ROLE = "urn:healthledger:codes:role"
DOCUMENT_TYPE = "urn:healthledger:codes:document-type"


def coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"system": system, "code": code, "display": display}


def concept(*codings: dict[str, Any]) -> dict[str, Any]:
    """A CodeableConcept of the codings given."""
    return {"coding": [dict(c) for c in codings]}


def blood_type(written: str) -> dict[str, Any]:
    """A blood type as written on the card, with its SNOMED CT code when it is one of the
    eight the card takes (a value stored before that check has its text only)."""
    known = BLOOD_TYPES.get(written)
    return {"coding": [dict(known)], "text": written} if known else {"text": written}


# -- standard codes -----------------------------------------------------------------------

BODY_HEIGHT = coding(LOINC, "8302-2", "Body height")
BODY_WEIGHT = coding(LOINC, "29463-7", "Body weight")
PHYSICAL_FINDINGS = coding(LOINC, "29545-1", "Physical findings Narrative")
BLOOD_GROUP = coding(LOINC, "882-1", "ABO and Rh group [Type] in Blood")
# The card's blood types (chaincode.medical.BLOOD_TYPES) as SNOMED CT findings.
BLOOD_TYPES = {
    "A+": coding(SNOMED_CT, "278149003", "Blood group A Rh(D) positive"),
    "A-": coding(SNOMED_CT, "278152006", "Blood group A Rh(D) negative"),
    "B+": coding(SNOMED_CT, "278150003", "Blood group B Rh(D) positive"),
    "B-": coding(SNOMED_CT, "278153001", "Blood group B Rh(D) negative"),
    "AB+": coding(SNOMED_CT, "278151004", "Blood group AB Rh(D) positive"),
    "AB-": coding(SNOMED_CT, "278154007", "Blood group AB Rh(D) negative"),
    "O+": coding(SNOMED_CT, "278147001", "Blood group O Rh(D) positive"),
    "O-": coding(SNOMED_CT, "278148006", "Blood group O Rh(D) negative"),
}
ANNOTATION_COMMENT = coding(LOINC, "48767-8", "Annotation comment [Interpretation] Narrative")
# LOINC's long common name; "Patient Consent" is the short name older FHIR examples show.
CONSENT_DOCUMENT = coding(LOINC, "59284-0", "Consent Document")

CENTIMETRE = {"unit": "cm", "system": UCUM, "code": "cm"}
KILOGRAM = {"unit": "kg", "system": UCUM, "code": "kg"}

VITAL_SIGNS = coding(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")
EXAM = coding(OBSERVATION_CATEGORY, "exam", "Exam")
LABORATORY = coding(OBSERVATION_CATEGORY, "laboratory", "Laboratory")

ALLERGY_ACTIVE = coding(ALLERGY_CLINICAL, "active", "Active")
CONDITION_ACTIVE = coding(CONDITION_CLINICAL, "active", "Active")
PROBLEM_LIST_ITEM = coding(CONDITION_CATEGORY, "problem-list-item", "Problem List Item")

PATIENT_PRIVACY = coding(CONSENT_SCOPE, "patient-privacy", "Privacy Consent")
OPT_IN = coding(ACT_CODE, "OPTIN", "opt-in")
INFORMATION_RECIPIENT = coding(PARTICIPATION_TYPE, "IRCP", "information recipient")
GUARDIAN = coding(ROLE_CODE, "GUARD", "guardian")
TREATMENT = coding(ACT_REASON, "TREAT", "treatment")
EMERGENCY_TREATMENT = coding(ACT_REASON, "ETREAT", "Emergency Treatment")
HEALTHCARE_OPERATIONS = coding(ACT_REASON, "HOPERAT", "healthcare operations")

RESTFUL_OPERATION = coding(AUDIT_EVENT_TYPE, "rest", "RESTful Operation")
READ = coding(RESTFUL_INTERACTION, "read", "read")
HISTORY_INSTANCE = coding(RESTFUL_INTERACTION, "history-instance", "history-instance")
DELETE = coding(RESTFUL_INTERACTION, "delete", "delete")
PERSON = coding(AUDIT_ENTITY_TYPE, "1", "Person")
SYSTEM_OBJECT = coding(AUDIT_ENTITY_TYPE, "2", "System Object")
PATIENT_ROLE = coding(OBJECT_ROLE, "1", "Patient")
DOMAIN_RESOURCE = coding(OBJECT_ROLE, "4", "Domain Resource")
APPLICATION_SERVER = coding(SECURITY_SOURCE_TYPE, "4", "Application Server")

# CVX code and display per vaccine name as a card may write it, matched case-insensitively
# on the whole trimmed name. Only names that denote one vaccine; "unspecified formulation"
# codes where the name does not say which formulation.
CVX: dict[str, tuple[str, str]] = {
    "mmr": ("03", "measles, mumps and rubella virus vaccine"),
    "bcg": ("19", "Bacillus Calmette-Guerin vaccine"),
    "dtap": ("20", "diphtheria, tetanus toxoids and acellular pertussis vaccine"),
    "varicella": ("21", "varicella virus vaccine"),
    "ipv": ("10", "poliovirus vaccine, inactivated"),
    "mmrv": ("94", "measles, mumps, rubella, and varicella virus vaccine"),
    "tdap": (
        "115",
        "tetanus toxoid, reduced diphtheria toxoid, and acellular pertussis vaccine, adsorbed",
    ),
    "hib": ("17", "Haemophilus influenzae type b vaccine, conjugate unspecified formulation"),
    "hepatitis b": ("45", "hepatitis B vaccine, unspecified formulation"),
    "hepb": ("45", "hepatitis B vaccine, unspecified formulation"),
    "influenza": ("88", "influenza virus vaccine, unspecified formulation"),
    "hpv": ("137", "HPV, unspecified formulation"),
    "rotavirus": ("122", "rotavirus vaccine, unspecified formulation"),
}


def cvx_of(vaccine: str) -> dict[str, Any] | None:
    """The CVX coding of a vaccine name, None unless the whole trimmed name is in `CVX`."""
    known = CVX.get(vaccine.strip().casefold())
    return None if known is None else coding(CVX_SYSTEM, *known)


def vaccine_code(vaccine: str) -> dict[str, Any]:
    """A vaccine's CodeableConcept: its name as written, and its CVX coding if it has one."""
    known = cvx_of(vaccine)
    return {"text": vaccine} if known is None else {"coding": [known], "text": vaccine}


# -- local codes --------------------------------------------------------------------------

HEALTH_GROUP = coding(CARD_ITEM, "health-group", "Health group")
PHYSICAL_EDUCATION_GROUP = coding(CARD_ITEM, "physical-education-group", "Physical education group")
SCHOOL_HEALTH_REPORT = coding(
    DOCUMENT_TYPE, "school-health-report", "Health report for school admission"
)

PE_GROUPS = {
    "MAIN": "Main",
    "PREPARATORY": "Preparatory",
    "SPECIAL": "Special",
    "EXEMPT": "Exempt",
}
PURPOSES = {
    "GUARDIAN": "Guardian",
    "TREATMENT": "Treatment",
    "SCHOOL_ADMISSION": "School admission",
    "EMERGENCY": "Emergency",
    "ADMINISTRATION": "Administration",
}
# The standard purpose of use of a local purpose, where one says the same.
STANDARD_PURPOSES = {
    "TREATMENT": TREATMENT,
    "EMERGENCY": EMERGENCY_TREATMENT,
    "ADMINISTRATION": HEALTHCARE_OPERATIONS,
}
# What an access log entry says was read; an AuditEvent names it (entity.name).
OBJECTS = {
    "MEDICAL_CARD": "Medical card",
    "CARD_HISTORY": "Medical card history",
    "REPORT_CONTENT": "Report content",
    "CHILD": "Child",
}
# Roles as callers carry them (authz.roles, and "server" for the server itself).
ROLES = {
    "doctor": ("DOCTOR", "Doctor"),
    "parent": ("PARENT", "Parent"),
    "school": ("SCHOOL", "School"),
    "admin": ("ADMIN", "Administrator"),
    "server": ("SERVER", "Server"),
}


def _local(system: str, table: dict[str, str], code: str, what: str) -> dict[str, Any]:
    if code not in table:
        raise ValueError(f"{code!r} is not a known {what}.")
    return coding(system, code, table[code])


def pe_group(group: str) -> dict[str, Any]:
    """The coding of a physical education group; ValueError for one the card cannot hold."""
    return _local(PE_GROUP, PE_GROUPS, group, "physical education group")


def local_purpose(name: str) -> dict[str, Any]:
    """The local coding of a purpose; ValueError for one the access log does not know."""
    return _local(ACCESS_PURPOSE, PURPOSES, name, "access purpose")


def purpose(name: str) -> dict[str, Any]:
    """A purpose of use as a CodeableConcept: the standard coding if one says the same, and
    always the local one. ValueError for a purpose the access log does not know."""
    local = local_purpose(name)
    standard = STANDARD_PURPOSES.get(name)
    return concept(local) if standard is None else concept(standard, local)


def role(name: str) -> dict[str, Any]:
    """The local coding of a caller's role ("doctor", ...); ValueError for an unknown one."""
    if name not in ROLES:
        raise ValueError(f"{name!r} is not a known role.")
    return coding(ROLE, *ROLES[name])
