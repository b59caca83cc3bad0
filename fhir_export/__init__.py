"""FHIR R4 export: a read-only mapping of the contracts' records to FHIR resources.

The resources are FHIR R4 as fhir.resources 8.3.0 models it in `fhir.resources.R4B`
(R4B changes none of the resources used here); every resource produced has been parsed by
its model. The package never touches a ledger: it reads only through
`chaincode.gateway.Gateway`, as the caller, so the contracts' access rules and the access
log apply exactly as for a GraphQL read.

Modules:

- `naming`: ids, references and identifier systems of one network.
- `codes`: the code systems and codes used, local and standard, with their displays.
- `validated`: the one place a built resource is parsed by its model.
- `patient`, `card`, `consents`, `audit`, `documents`: one record kind each, mapped to
  Patient; Immunization, AllergyIntolerance, Condition and Observation; Consent;
  AuditEvent; DocumentReference.
- `bundles`: searchset Bundles and OperationOutcomes.
- `reading`: what one caller may read of a child, through the gateway.
- `export`: the Bundles the FHIR endpoints answer with.
"""
