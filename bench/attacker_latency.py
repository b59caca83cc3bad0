"""p99 of a well-behaved client's `me` while another certificate holder sends the worst documents.

Set-up: a fresh network with the demo users (api/devnet.py) and `healthledger serve` on it
(bench/soak.py's `start_server`: one worker, an SQLite ledger in a temporary directory),
pinned to CPU `--server-core` when the machine has two; this process runs on the other.
Before measuring, alice registers a child and applies to school-a, and school-a-office
rejects, over and over, until the `report` channel holds `--blocks` blocks (the issue's
chain had 143).

The well-behaved client is alice on one keep-alive HTTPS connection, sending
`{ me { uid } }` and waiting for each answer (bench/identity.py's `read_response`). The
attacker is school-a-office on another connection, sending one kind of document after
another with no pause, each made unique by a trailing comment so that neither the parser
cache nor the validation cache helps it:

- duplicates: `{ me { uid } me { uid } ... }`, as many as the token limit allows;
- fragment-bomb: ten fragments, each spreading the one before ten times (10^9 fields);
- verify-aliases: 30 aliases of `verifyChannel(channel: "report")` (accepted);
- deep-nesting: `__type(name: "Query") { fields { type { ofType { ofType ...` as deep
  as the token limit allows (introspection, which validation's depth limit leaves out);
- many-tokens: `{ me { uid uid ... } }` just over the token limit;
- introspection: the standard introspection query, the largest document a legitimate
  client (GraphiQL) sends (accepted);
- list-variable: a 340,000-entry list variable, as long as fits in the 1 MiB body limit
  (refused before coercion).

Each round measures a quiet window (attacker idle) and one window per kind, in an order
that alternates between rounds. Per window: alice's p50 and p99 latency (request written
to last body byte), the attacker's answers per second and the error code it got, and the
server's CPU per attacker request (its CPU over the window less what alice's requests
cost in the round's quiet window). The table holds medians over rounds and each kind's
p99 over the quiet p99 (goal: at most 2).

    .venv/bin/python bench/attacker_latency.py [--rounds 3] [--window 3] [--blocks 150]
        [--attacks duplicates,fragment-bomb,verify-aliases,deep-nesting,many-tokens,introspection,
                   list-variable]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from api_load import graphql_body, post_request
from arguments import names
from closed_loop import percentile
from graphql import get_introspection_query
from identity import close_quietly, log, process_cpu_seconds, read_response
from soak import start_server

from api.devnet import ensure_dev_network, user_context
from api.schema import MAX_TOKENS
from tests.tls_server import free_port

HOST = "127.0.0.1"
ME = "{ me { uid } }"
GOAL_RATIO = 2.0
WARMUP_S = 0.3


# --------------------------------------------------------------------------- attacks


def duplicate_fields() -> str:
    """As many `me { uid }` as the token limit lets through (4 tokens each, a few spare)."""
    return "{ " + "me { uid } " * ((MAX_TOKENS - 8) // 4) + "}"


def fragment_bomb() -> str:
    fragments = ["fragment F0 on Query { me { uid } }"] + [
        f"fragment F{i} on Query {{ {' '.join([f'...F{i - 1}'] * 10)} }}" for i in range(1, 10)
    ]
    return "query { ...F9 } " + " ".join(fragments)


def verify_aliases() -> str:
    aliases = (f'v{i}: verifyChannel(channel: "report") {{ ok height }}' for i in range(30))
    return "{ " + " ".join(aliases) + " }"


def deep_nesting() -> str:
    levels = (MAX_TOKENS - 20) // 3  # `{ ofType` and `}` per level, 17 tokens around them
    opening = '{ __type(name: "Query") { fields { type ' + "{ ofType " * levels
    return opening + "{ name }" + " }" * levels + " } } }"


def many_tokens() -> str:
    return "{ me { " + "uid " * MAX_TOKENS + "} }"


def long_list_variable() -> tuple[str, dict[str, Any]]:
    """A list variable as long as fits in the 1 MiB body limit (340,000 numbers)."""
    document = (
        "mutation($id: ID!, $schools: [String!]!) "
        "{ approveReport(id: $id, schools: $schools) { id } }"
    )
    return document, {"id": "report-x", "schools": [1] * 340_000}


def _without_variables(make: Callable[[], str]) -> Callable[[], tuple[str, dict[str, Any]]]:
    return lambda: (make(), {})


ATTACKS: dict[str, Callable[[], tuple[str, dict[str, Any]]]] = {
    "duplicates": _without_variables(duplicate_fields),
    "fragment-bomb": _without_variables(fragment_bomb),
    "verify-aliases": _without_variables(verify_aliases),
    "deep-nesting": _without_variables(deep_nesting),
    "many-tokens": _without_variables(many_tokens),
    "introspection": _without_variables(get_introspection_query),
    "list-variable": long_list_variable,
}


# --------------------------------------------------------------------------- clients


@dataclass
class Connection:
    """One user's keep-alive HTTPS connection to /graphql."""

    port: int
    context: ssl.SSLContext
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    async def ask(
        self, document: str, variables: dict[str, Any] | None = None
    ) -> tuple[int, bytes]:
        """Send one document and read the answer, on a new connection if the server closed
        the old one (uvicorn closes one idle for 5 s, as the attacker's is between windows)."""
        request = post_request("/graphql", self.port, graphql_body(document, variables or {}))
        if self.writer is not None:
            try:
                return await self._exchange(request)
            except (asyncio.IncompleteReadError, ConnectionError):
                await self.close()
        return await self._exchange(request)

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                HOST, self.port, ssl=self.context, server_hostname=HOST
            )
        assert self.reader is not None
        self.writer.write(request)
        return await read_response(self.reader)

    async def close(self) -> None:
        if self.writer is not None:
            await close_quietly(self.writer)
            self.writer = None


def answer_code(status: int, body: bytes) -> str:
    """The first error's code, "ok" when there is none, or "HTTP <status>"."""
    if status != 200:
        return f"HTTP {status}"
    errors = json.loads(body).get("errors")
    return str(errors[0].get("extensions", {}).get("code")) if errors else "ok"


@dataclass
class Window:
    """What one window measured."""

    latencies_ms: list[float] = field(default_factory=list)
    attacks: int = 0
    codes: set[str] = field(default_factory=set)
    seconds: float = 0.0
    server_cpu_s: float = 0.0

    @property
    def p50(self) -> float:
        return percentile(sorted(self.latencies_ms), 0.50)

    @property
    def p99(self) -> float:
        return percentile(sorted(self.latencies_ms), 0.99)


async def well_behaved(alice: Connection, window: Window, until: float, start: float) -> None:
    while (now := time.perf_counter()) < until:
        status, body = await alice.ask(ME)
        if answer_code(status, body) != "ok":
            raise SystemExit(f"alice's `me` failed: {status} {body[:200]!r}")
        if now >= start:
            window.latencies_ms.append((time.perf_counter() - now) * 1000)


async def attacker(
    school: Connection,
    make: Callable[[], tuple[str, dict[str, Any]]],
    window: Window,
    until: float,
) -> None:
    document, variables = make()
    count = 0
    while time.perf_counter() < until:
        count += 1
        status, body = await school.ask(f"{document} #{count}", variables)
        window.attacks += 1
        window.codes.add(answer_code(status, body))


async def measure(
    alice: Connection, school: Connection, attack: str | None, seconds: float, server: int
) -> Window:
    window = Window()
    start = time.perf_counter() + WARMUP_S
    until = start + seconds
    tasks = [asyncio.create_task(well_behaved(alice, window, until, start))]
    if attack is not None:
        tasks.append(asyncio.create_task(attacker(school, ATTACKS[attack], window, until)))
    await asyncio.sleep(WARMUP_S)
    cpu = process_cpu_seconds(server)
    began = time.perf_counter()
    await asyncio.gather(*tasks)
    window.seconds = time.perf_counter() - began
    window.server_cpu_s = process_cpu_seconds(server) - cpu
    return window


# --------------------------------------------------------------------------- set-up


def grow_report_channel(directory: Path, port: int, blocks: int) -> None:
    """Admission requests to school-a and their rejections until `report` has `blocks`."""
    base = f"https://{HOST}:{port}"
    with (
        httpx.Client(base_url=base, verify=user_context(directory, "parents", "alice")) as alice,
        httpx.Client(
            base_url=base, verify=user_context(directory, "school-a", "school-a-office")
        ) as school,
    ):

        def data(client: httpx.Client, document: str, **variables: object) -> Any:
            answer = client.post("/graphql", json={"query": document, "variables": variables})
            body = answer.json()
            if answer.status_code != 200 or body.get("errors"):
                raise SystemExit(f"set-up failed: {answer.text[:300]}")
            return body["data"]

        child = data(
            alice,
            "mutation($input: RegisterChildInput!) { registerChild(input: $input) { id } }",
            input={"fullName": "Bench Child", "birthDate": "2019-04-02"},
        )["registerChild"]["id"]
        for _ in range(blocks // 2):
            request = data(
                alice,
                "mutation($child: ID!) "
                '{ createAdmissionRequest(childId: $child, school: "school-a") { id } }',
                child=child,
            )["createAdmissionRequest"]["id"]
            data(
                school,
                'mutation($id: ID!) { rejectAdmissionRequest(id: $id, reason: "Full.") { id } }',
                id=request,
            )


def pin(server: subprocess.Popen[bytes], server_core: int, client_core: int) -> str:
    usable = os.sched_getaffinity(0)
    if not {server_core, client_core} <= usable or server_core == client_core:
        return "not pinned (needs two usable CPUs)"
    for pid in [server.pid, *_children(server.pid)]:
        os.sched_setaffinity(pid, {server_core})
    os.sched_setaffinity(0, {client_core})
    return f"server on CPU {server_core}, clients on CPU {client_core}"


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


# --------------------------------------------------------------------------- report


def report(rounds: list[dict[str, Window]], blocks: int, pinning: str) -> bool:
    quiet = [r["quiet"] for r in rounds]
    alice_cpu_ms = statistics.median(w.server_cpu_s / len(w.latencies_ms) * 1000 for w in quiet)
    quiet_p50 = statistics.median(w.p50 for w in quiet)
    quiet_p99 = statistics.median(w.p99 for w in quiet)
    print(
        f"\nattacker latency: {len(rounds)} rounds, `report` chain of {blocks} blocks, "
        f"token limit {MAX_TOKENS}; {pinning}\n"
    )
    print(
        "| attacker sends | alice p50 ms | alice p99 ms | p99 / quiet p99 "
        "| attacker answers/s | server CPU ms per attack | attacker got |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    print(f"| nothing (quiet) | {quiet_p50:.2f} | {quiet_p99:.2f} | 1.00 | - | - | - |")
    met = True
    for attack in [name for name in ATTACKS if name in rounds[0]]:
        windows = [r[attack] for r in rounds]
        p50 = statistics.median(w.p50 for w in windows)
        p99 = statistics.median(w.p99 for w in windows)
        rate = statistics.median(w.attacks / w.seconds for w in windows)
        cpu = statistics.median(
            (w.server_cpu_s * 1000 - alice_cpu_ms * len(w.latencies_ms)) / max(w.attacks, 1)
            for w in windows
        )
        codes = ", ".join(sorted(set().union(*(w.codes for w in windows))))
        ratio = p99 / quiet_p99
        met = met and ratio <= GOAL_RATIO
        print(
            f"| {attack} | {p50:.2f} | {p99:.2f} | {ratio:.2f} | {rate:.0f} | {cpu:.2f} | {codes} |"
        )
    print(f"\ngoal: p99 at most {GOAL_RATIO:g}x the quiet p99 — {'met' if met else 'MISSED'}")
    return met


async def run(
    port: int, directory: Path, args: argparse.Namespace, server: int
) -> list[dict[str, Window]]:
    alice = Connection(port, user_context(directory, "parents", "alice"))
    school = Connection(port, user_context(directory, "school-a", "school-a-office"))
    rounds: list[dict[str, Window]] = []
    try:
        order: list[str | None] = [None, *args.attacks]
        for number in range(args.rounds):
            windows: dict[str, Window] = {}
            for attack in order if number % 2 == 0 else order[::-1]:
                label = attack or "quiet"
                windows[label] = await measure(alice, school, attack, args.window, server)
                log(f"round {number + 1}, {label}: alice's p99 {windows[label].p99:.2f} ms")
            rounds.append(windows)
    finally:
        await alice.close()
        await school.close()
    return rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=3.0, help="seconds per window")
    parser.add_argument("--blocks", type=int, default=150, help="blocks on `report` first")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)
    parser.add_argument("--attacks", type=names(list(ATTACKS)), default=list(ATTACKS))
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.window <= 0 or args.blocks < 2:
        parser.error("--rounds must be ≥ 1, --window > 0 and --blocks ≥ 2.")

    directory = Path(tempfile.mkdtemp(prefix="healthledger-attacker-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        network = directory / "network"
        ensure_dev_network(network)
        port = free_port()
        ledger = f"sqlite:///{directory / 'ledger.db'}"
        server = start_server(network, ledger, port, 1, directory / "log")
        log(f"growing `report` to {args.blocks} blocks")
        grow_report_channel(network, port, args.blocks)
        pinning = pin(server, args.server_core, args.client_core)
        rounds = asyncio.run(run(port, network, args, server.pid))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)
    return 0 if report(rounds, args.blocks, pinning) else 1


if __name__ == "__main__":
    sys.exit(main())
