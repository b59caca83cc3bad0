"""schema.graphql is exactly what `healthledger schema` prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import GraphQLField, GraphQLObjectType, build_schema, print_ast

from api.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_schema_file_matches_the_served_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == (ROOT / "schema.graphql").read_text(), (
        "schema.graphql is stale: run `healthledger schema > schema.graphql`"
    )


def _signature(name: str, field: GraphQLField) -> str:
    """`name(arg: Type = default, ...): Type`, on one line, without descriptions."""
    arguments = []
    for arg_name, arg in field.args.items():
        default = arg.ast_node.default_value if arg.ast_node else None
        shown = f"{arg_name}: {arg.type}"
        arguments.append(shown if default is None else f"{shown} = {print_ast(default)}")
    listed = f"({', '.join(arguments)})" if arguments else ""
    return f"{name}{listed}: {field.type}"


def test_schema_keeps_every_name_of_the_contract() -> None:
    schema = build_schema((ROOT / "schema.graphql").read_text())
    roots = [schema.query_type, schema.mutation_type, schema.subscription_type]
    signatures = {
        _signature(name, field)
        for root in roots
        if isinstance(root, GraphQLObjectType)
        for name, field in root.fields.items()
    }
    report = schema.get_type("Report")
    assert isinstance(report, GraphQLObjectType)
    signatures.add(_signature("content", report.fields["content"]))
    signatures.add(_signature("permissions", report.fields["permissions"]))
    for name in (
        "me: Identity!",
        "children(first: Int! = 50, after: String = null): ChildConnection!",
        "child(id: ID!): Child",
        "medicalCard(childId: ID!): MedicalCard!",
        "medicalCardHistory(childId: ID!, first: Int! = 50, after: String = null)"
        ": MedicalCardRevisionConnection!",
        "agreements(childId: ID = null, first: Int! = 50, after: String = null)"
        ": AgreementConnection!",
        "admissionRequests(status: AdmissionStatus = null, first: Int! = 50, after: String = null)"
        ": AdmissionRequestConnection!",
        "reportRequests(status: ReportRequestStatus = null, first: Int! = 50, "
        "after: String = null): ReportRequestConnection!",
        "reports(status: ReportStatus = null, first: Int! = 50, after: String = null)"
        ": ReportConnection!",
        "report(id: ID!): Report!",
        "blocks(channel: String!, first: Int! = 50, after: String = null): BlockConnection!",
        "verifyChannel(channel: String!, full: Boolean = false): Verification!",
        "inclusionProof(channel: String!, txId: String!, treeSize: Int = null): InclusionProof!",
        "consistencyProof(channel: String!, fromSize: Int!, toSize: Int!): ConsistencyProof!",
        "registerChild(input: RegisterChildInput!): Child!",
        "updateMedicalCard(childId: ID!, expectedVersion: Int!, patch: MedicalCardPatch!)"
        ": MedicalCard!",
        "createReport(reportRequestId: ID!, conclusion: String!): Report!",
        "signAgreement(childId: ID!, doctorUid: String!, validUntil: DateTime = null): Agreement!",
        "extendAgreement(id: ID!, validUntil: DateTime!): Agreement!",
        "approveReport(id: ID!, schools: [String!]!, validUntil: DateTime = null): Report!",
        "openEmergencyAccess(childId: ID!, reason: String!): EmergencyAccess!",
        "endEmergencyAccess(id: ID!): EmergencyAccess!",
        "emergencyAccesses(childId: ID!): [EmergencyAccess!]!",
        "revokeReportPermission(id: ID!, school: String!): Report!",
        "eraseChild(childId: ID!, confirm: String!): ErasureReceipt!",
        "events(channel: String!): LedgerEvent!",
        "content: ReportContent",
        "permissions: [ReportPermission!]!",
    ):
        assert name in signatures, name


def test_every_connection_has_relay_edges_and_page_info() -> None:
    schema = build_schema((ROOT / "schema.graphql").read_text())
    page_info = schema.get_type("PageInfo")
    assert isinstance(page_info, GraphQLObjectType)
    assert {n: str(f.type) for n, f in page_info.fields.items()} == {
        "hasNextPage": "Boolean!",
        "hasPreviousPage": "Boolean!",
        "startCursor": "String",
        "endCursor": "String",
    }
    for node in (
        "AdmissionRequest",
        "Agreement",
        "Block",
        "Child",
        "MedicalCardRevision",
        "Report",
        "ReportRequest",
    ):
        connection, edge = schema.get_type(f"{node}Connection"), schema.get_type(f"{node}Edge")
        assert isinstance(connection, GraphQLObjectType) and isinstance(edge, GraphQLObjectType)
        assert {n: str(f.type) for n, f in connection.fields.items()} == {
            "edges": f"[{node}Edge!]!",
            "pageInfo": "PageInfo!",
        }
        assert {n: str(f.type) for n, f in edge.fields.items()} == {
            "cursor": "String!",
            "node": f"{node}!",
        }


def test_consent_types_have_the_fields_of_the_contract() -> None:
    schema = build_schema((ROOT / "schema.graphql").read_text())

    def fields(name: str) -> dict[str, str]:
        found = schema.get_type(name)
        assert isinstance(found, GraphQLObjectType)
        return {n: str(f.type) for n, f in found.fields.items()}

    assert fields("EmergencyAccess") == {
        "id": "ID!",
        "childId": "ID!",
        "doctorUid": "String!",
        "reason": "String!",
        "openedAt": "DateTime!",
        "validUntil": "DateTime!",
        "endedAt": "DateTime",
        "endedBy": "String",
    }
    assert fields("ReportPermission") == {
        "school": "String!",
        "grantedAt": "DateTime!",
        "validUntil": "DateTime!",
        "status": "ReportPermissionStatus!",
        "revokedAt": "DateTime",
    }
    assert fields("Agreement")["validUntil"] == "DateTime"
    assert fields("ErasureReceipt") == {
        "childId": "ID!",
        "erasedAt": "DateTime!",
        "channels": "[String!]!",
    }
    statuses = {
        "AgreementStatus": "EXPIRED",
        "ReportPermissionStatus": "REVOKED",
        "AccessOutcome": "ERASED",
    }
    for enum, value in statuses.items():
        assert value in schema.get_type(enum).values  # type: ignore[union-attr]
