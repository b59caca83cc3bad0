"""schema.graphql is exactly what `healthledger schema` prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_schema_file_matches_the_served_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert printed == (ROOT / "schema.graphql").read_text(), (
        "schema.graphql is stale: run `healthledger schema > schema.graphql`"
    )


def test_schema_keeps_every_name_of_the_contract() -> None:
    text = (ROOT / "schema.graphql").read_text()
    for name in (
        "me: Identity!",
        "children: [Child!]!",
        "child(id: ID!): Child",
        "medicalCard(childId: ID!): MedicalCard!",
        "medicalCardHistory(childId: ID!): [MedicalCardRevision!]!",
        "reports(status: ReportStatus = null): [Report!]!",
        "report(id: ID!): Report!",
        "blocks(channel: String!, fromNumber: Int = 0, limit: Int = 50): [Block!]!",
        "verifyChannel(channel: String!, full: Boolean = false): Verification!",
        "registerChild(input: RegisterChildInput!): Child!",
        "updateMedicalCard(childId: ID!, expectedVersion: Int!, patch: MedicalCardPatch!)"
        ": MedicalCard!",
        "createReport(reportRequestId: ID!, conclusion: String!): Report!",
        "approveReport(id: ID!, schools: [String!]!): Report!",
        "revokeReportPermission(id: ID!, school: String!): Report!",
        "events(channel: String!): LedgerEvent!",
        "content: ReportContent",
    ):
        assert name in text, name
