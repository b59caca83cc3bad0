"""`healthledger demo`: the whole story through the public API, on a fresh network.

A temporary network with the demo users is created, `healthledger serve` is
started on it (embedded SQLite ledger, a free port, real mutual TLS), and each
user sends GraphQL over HTTPS with their own client certificate. Every step
prints who acted, the operation, the resulting status and the block that holds
it; then what each party could see is probed and printed as a table, and both
channels are verified after the server has stopped. Any step that fails, any
probe that sees more or less than the access rules allow, and any damaged
chain ends the demo with exit code 1.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from api.verification import ChannelTarget, verify_and_report
from authz.network import load_network

from .devnet import DEMO_USERS, ensure_dev_network, user_context
from .serve_process import ServeFailedError, ServeProcess

REQUEST_TIMEOUT_SECONDS = 20


class DemoFailedError(Exception):
    """A step or a check of the demo did not go as the contract says."""


@dataclass(frozen=True)
class Actor:
    uid: str
    role: str
    client: httpx.Client

    @property
    def label(self) -> str:
        return f"{self.uid} ({self.role})"

    def call(self, document: str, **variables: Any) -> tuple[Any, list[dict[str, Any]]]:
        """The data and errors of one GraphQL request."""
        response = self.client.post("/graphql", json={"query": document, "variables": variables})
        if response.status_code != 200:
            raise DemoFailedError(f"{self.label} got HTTP {response.status_code}: {response.text}")
        body = response.json()
        return body.get("data"), body.get("errors") or []

    def data(self, document: str, **variables: Any) -> Any:
        data, errors = self.call(document, **variables)
        if errors:
            raise DemoFailedError(f"{self.label}: {errors[0]['message']}")
        return data


@dataclass(frozen=True)
class Operation:
    """A mutation of the story, the channel its transaction lands on, and how to show its result."""

    field: str
    channel: str
    document: str
    result: Callable[[dict[str, Any]], str] = lambda value: str(value["status"])


REGISTER_CHILD = Operation(
    "registerChild",
    "medical",
    "mutation($input: RegisterChildInput!) { registerChild(input: $input) { id } }",
    lambda _: "card version 1",
)
SIGN = Operation(
    "signAgreement",
    "medical",
    """mutation($child: ID!, $doctor: String!) {
  signAgreement(childId: $child, doctorUid: $doctor) { id status } }""",
)
ACCEPT = Operation(
    "acceptAgreement",
    "medical",
    "mutation($id: ID!) { acceptAgreement(id: $id) { id status } }",
)
UPDATE_CARD = Operation(
    "updateMedicalCard",
    "medical",
    """mutation($child: ID!, $version: Int!, $patch: MedicalCardPatch!) {
  updateMedicalCard(childId: $child, expectedVersion: $version, patch: $patch) { version } }""",
    lambda card: f"card version {card['version']}",
)
APPLY = Operation(
    "createAdmissionRequest",
    "report",
    """mutation($child: ID!, $school: String!) {
  createAdmissionRequest(childId: $child, school: $school) { id status } }""",
)
ACCEPT_ADMISSION = Operation(
    "acceptAdmissionRequest",
    "report",
    "mutation($id: ID!) { acceptAdmissionRequest(id: $id) { id status } }",
)
REQUEST_REPORT = Operation(
    "createReportRequest",
    "report",
    """mutation($admission: ID!) {
  createReportRequest(admissionRequestId: $admission) { id status } }""",
)
CREATE_REPORT = Operation(
    "createReport",
    "report",
    """mutation($request: ID!, $conclusion: String!) {
  createReport(reportRequestId: $request, conclusion: $conclusion) { id status } }""",
)
APPROVE = Operation(
    "approveReport",
    "report",
    """mutation($id: ID!, $schools: [String!]!) {
  approveReport(id: $id, schools: $schools) { id status permittedSchools } }""",
    lambda report: f"{report['status']} for {', '.join(report['permittedSchools'])}",
)
NEWEST_BLOCK = """query($channel: String!) {
  blocks(channel: $channel, first: 1) { edges { node { number transactions { function } } } } }"""
REPORT = "query($id: ID!) { report(id: $id) { status content { conclusion } } }"
CARD = "query($child: ID!) { medicalCard(childId: $child) { version } }"
CARD_PATCH = {
    "allergies": ["peanuts"],
    "vaccinations": [{"vaccine": "MMR", "date": "2020-06-01", "dose": 1}],
    "healthGroup": 2,
    "physicalEducationGroup": "MAIN",
}
CONCLUSION = "Healthy; may attend PE in the main group."


class Demo:
    """The story, step by step, printed as it happens."""

    def __init__(self, actors: dict[str, Actor]) -> None:
        self.actors = actors
        self.parent = actors["alice"]
        self.doctor = actors["dr-house"]
        self.school_a = actors["school-a-office"]
        self.school_b = actors["school-b-office"]
        self.unexpected = 0

    def run(self) -> None:
        print(f"   {'who':<26} {'operation':<24} {'result':<22} block")
        print("1. parents register their child and sign an agreement with a pediatrician")
        birth = {"fullName": "Ada Martin", "birthDate": "2019-05-14"}
        child = self.act(self.parent, REGISTER_CHILD, input=birth)["id"]
        agreement = self.act(self.parent, SIGN, child=child, doctor="dr-house")["id"]
        self.act(self.doctor, ACCEPT, id=agreement)
        self.act(self.doctor, UPDATE_CARD, child=child, version=1, patch=CARD_PATCH)
        print("2. parents apply to school-a, which accepts")
        admission = self.act(self.parent, APPLY, child=child, school="school-a")["id"]
        self.act(self.school_a, ACCEPT_ADMISSION, id=admission)
        print("3. school-a asks the pediatrician for a health report")
        request = self.act(self.school_a, REQUEST_REPORT, admission=admission)["id"]
        print("4. the pediatrician writes the report from the card")
        report = self.act(self.doctor, CREATE_REPORT, request=request, conclusion=CONCLUSION)["id"]
        before = self.visibility(report, child, "before approval")
        print("5. parents permit school-a to read it")
        self.act(self.parent, APPROVE, id=report, schools=["school-a"])
        after = self.visibility(report, child, "after approval")
        print()
        self.print_visibility(before + after)

    def act(self, actor: Actor, operation: Operation, **variables: Any) -> Any:
        """Run one mutation and print who did it, what came of it, and the block that holds it."""
        value = actor.data(operation.document, **variables)[operation.field]
        # The demo is the network's only writer, so the newest block holds this transaction,
        # and the actor, its creator, sees its header.
        (newest,) = actor.data(NEWEST_BLOCK, channel=operation.channel)["blocks"]["edges"]
        functions = [tx["function"] for tx in newest["node"]["transactions"]]
        if operation.field not in functions:
            raise DemoFailedError(f"the newest {operation.channel} block holds {functions}")
        block = f"{operation.channel} #{newest['node']['number']}"
        print(f"   {actor.label:<26} {operation.field:<24} {operation.result(value):<22} {block}")
        return value

    def visibility(self, report: str, child: str, when: str) -> list[Probe]:
        """What each party sees of the report and the card; the rules say what they must see."""
        approved = when == "after approval"
        probes = [
            Probe(
                self.school_a,
                when,
                *self.report_view(self.school_a, report),
                *self.card_view(self.school_a, child),
                expected=("content" if approved else "status only", "refused"),
            ),
        ]
        if approved:
            probes += [
                Probe(
                    self.school_b,
                    when,
                    *self.report_view(self.school_b, report),
                    *self.card_view(self.school_b, child),
                    expected=("refused", "refused"),
                ),
                Probe(
                    self.doctor,
                    when,
                    *self.report_view(self.doctor, report),
                    *self.card_view(self.doctor, child),
                    expected=("content", "card"),
                ),
                Probe(
                    self.parent,
                    when,
                    *self.report_view(self.parent, report),
                    *self.card_view(self.parent, child),
                    expected=("content", "card"),
                ),
            ]
        self.unexpected += sum(not probe.as_expected for probe in probes)
        return probes

    @staticmethod
    def report_view(actor: Actor, report: str) -> tuple[str, str]:
        data, errors = actor.call(REPORT, id=report)
        seen = (data or {}).get("report")
        if seen is None:
            return "refused", f"refused ({_codes(errors)})"
        if seen["content"] is None:
            return "status only", f"{seen['status']}; content refused ({_codes(errors)})"
        return "content", f'{seen["status"]}; "{seen["content"]["conclusion"]}"'

    @staticmethod
    def card_view(actor: Actor, child: str) -> tuple[str, str]:
        data, errors = actor.call(CARD, child=child)
        card = (data or {}).get("medicalCard")
        if card is None:
            return "refused", f"refused ({_codes(errors)})"
        return "card", f"version {card['version']}"

    def print_visibility(self, probes: list[Probe]) -> None:
        print("who could see what")
        print(f"   {'party':<26} {'when':<16} {'health report':<58} medical card")
        for probe in probes:
            mark = "" if probe.as_expected else "   <- NOT what the access rules allow"
            print(
                f"   {probe.actor.label:<26} {probe.when:<16} {probe.report:<58} {probe.card}{mark}"
            )


@dataclass(frozen=True)
class Probe:
    actor: Actor
    when: str
    report_kind: str
    report: str
    card_kind: str
    card: str
    expected: tuple[str, str]

    @property
    def as_expected(self) -> bool:
        return (self.report_kind, self.card_kind) == self.expected


def _codes(errors: list[dict[str, Any]]) -> str:
    return ", ".join(sorted({e.get("extensions", {}).get("code", "?") for e in errors})) or "-"


def run_demo(keep: bool = False) -> bool:
    """The demo end to end; True if every step and check went as the contract says."""
    started = time.monotonic()
    directory = Path(tempfile.mkdtemp(prefix="healthledger-demo-"))
    try:
        ensure_dev_network(directory)
        with ServeProcess(directory, None, directory / "server.log") as server:
            server.start()
            print(
                f"healthledger demo: a fresh network in {directory}, embedded SQLite ledger, "
                f"{server.base_url}/graphql over mutual TLS\n"
            )
            try:
                with _actors(directory, server.base_url) as actors:
                    demo = Demo(actors)
                    demo.run()
            finally:
                server.terminate()
        print("\nverify (after the server stopped):")
        network = load_network(directory)
        intact = verify_and_report(
            ChannelTarget(channel.name, network.ledger_url(channel)) for channel in network.channels
        )
        ok = intact and demo.unexpected == 0
        elapsed = time.monotonic() - started
        print(f"\ndemo {'passed' if ok else 'FAILED'} in {elapsed:.1f} s")
        return ok
    except (DemoFailedError, ServeFailedError) as exc:
        print(f"\ndemo FAILED: {exc}")
        return False
    finally:
        if keep:
            print(f"kept the network and ledger in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def _actors(directory: Path, base_url: str) -> Iterator[dict[str, Actor]]:
    """One HTTPS client per demo user, each presenting that user's certificate."""
    actors = {
        uid: Actor(
            uid,
            role,
            httpx.Client(
                base_url=base_url,
                verify=user_context(directory, org, uid),
                timeout=REQUEST_TIMEOUT_SECONDS,
            ),
        )
        for org, uid, role, _ in DEMO_USERS
    }
    try:
        yield actors
    finally:
        for actor in actors.values():
            actor.client.close()
