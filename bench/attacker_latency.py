"""p99 of a well-behaved client's `me` while another certificate holder sends the worst documents.

Set-up: a fresh demo network (devkit.devnet) and `healthledger serve` on it
(devkit.serve_process: one worker, an SQLite ledger in a temporary directory), pinned to
--server-core; this process runs on --client-core. Alice registers a child and applies to
school-a, and school-a-office rejects, over and over, until the `report` channel holds
--blocks blocks.

The well-behaved client is alice on one keep-alive HTTPS connection, sending `{ me { uid } }`
and waiting for each answer. The attacker is school-a-office on another connection, sending
one kind of document after another with no pause, each made unique by a trailing comment so
that no cache helps it (--attacks):

- duplicates: `{ me { uid } me { uid } ... }`, as many as the token limit allows;
- fragment-bomb: ten fragments, each spreading the one before ten times (10^9 fields);
- verify-aliases: 30 aliases of `verifyChannel(channel: "report")` (accepted);
- deep-nesting: `__type(name: "Query") { fields { type { ofType { ofType ...` as deep as the
  token limit allows (introspection, which the depth limit leaves out);
- many-tokens: `{ me { uid uid ... } }` just over the token limit;
- introspection: the standard introspection query (accepted);
- list-variable: a 340,000-entry list variable, as long as fits in the 1 MiB body limit.

Each repeat measures a quiet window (attacker idle) and one window per kind, in an order that
alternates between repeats. Per window: alice's p50 and p99 (request written to last body
byte), the attacker's answers/s and the codes it got, and the server's CPU per attack (its
CPU over the window less what alice's requests cost in the repeat's quiet window). Goal:
alice's p99 at most 2x the quiet p99 under every kind.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from graphql import get_introspection_query

from api.query_limits import MAX_TOKENS
from devkit.devnet import ensure_dev_network, user_context
from devkit.serve_process import ServeProcess

from . import harness
from .harness import Result, log, median, percentile
from .https_load import Streams, close_quietly, connect, graphql_body, outcome, read_response
from .https_load import request as http_request

GOAL_RATIO = 2.0
PS = (0.50, 0.99)
LIST_VARIABLE = (
    "mutation($id: ID!, $schools: [String!]!) { approveReport(id: $id, schools: $schools) { id } }"
)
Document = tuple[str, dict[str, Any]]


def duplicates() -> Document:
    return "{ " + "me { uid } " * ((MAX_TOKENS - 8) // 4) + "}", {}


def fragment_bomb() -> Document:
    fragments = ["fragment F0 on Query { me { uid } }"] + [
        f"fragment F{i} on Query {{ {' '.join([f'...F{i - 1}'] * 10)} }}" for i in range(1, 10)
    ]
    return "query { ...F9 } " + " ".join(fragments), {}


def verify_aliases() -> Document:
    aliases = (f'v{i}: verifyChannel(channel: "report") {{ ok height }}' for i in range(30))
    return "{ " + " ".join(aliases) + " }", {}


def deep_nesting() -> Document:
    levels = (MAX_TOKENS - 20) // 3  # `{ ofType` and `}` per level, 17 tokens around them
    opening = '{ __type(name: "Query") { fields { type ' + "{ ofType " * levels
    return opening + "{ name }" + " }" * levels + " } } }", {}


ATTACKS: dict[str, Callable[[], Document]] = {
    "duplicates": duplicates,
    "fragment-bomb": fragment_bomb,
    "verify-aliases": verify_aliases,
    "deep-nesting": deep_nesting,
    "many-tokens": lambda: ("{ me { " + "uid " * MAX_TOKENS + "} }", {}),
    "introspection": lambda: (get_introspection_query(), {}),
    "list-variable": lambda: (LIST_VARIABLE, {"id": "report-x", "schools": [1] * 340_000}),
}


def arguments() -> Any:
    found = harness.parser(__doc__.splitlines()[0], repeats=3, duration=3.0, warmup=0.3)
    found.add_argument("--blocks", type=int, default=150, help="blocks on `report` first")
    every = ",".join(ATTACKS)
    found.add_argument(
        "--attacks", type=harness.names(list(ATTACKS)), default=list(ATTACKS), help=every
    )
    harness.pinning_options(found)
    return found


@dataclass
class Connection:
    """One user's keep-alive HTTPS connection to /graphql, reopened when the server closed it."""

    port: int
    context: Any
    streams: Streams | None = None

    async def ask(self, document: str, variables: dict[str, Any]) -> str:
        data = http_request("POST", "/graphql", self.port, graphql_body(document, variables))
        for attempt in (1, 2):
            try:
                self.streams = self.streams or await connect(self.port, self.context)
                self.streams[1].write(data)
                return outcome(*await read_response(self.streams[0]))
            except (asyncio.IncompleteReadError, ConnectionError):
                await self.close()  # uvicorn closes a connection idle for 5 s
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self.streams is not None:
            await close_quietly(self.streams[1])
            self.streams = None


@dataclass
class Window:
    latencies_ms: list[float] = field(default_factory=list)
    attacks: int = 0
    codes: set[str] = field(default_factory=set)
    seconds: float = 0.0
    server_cpu_s: float = 0.0


async def well_behaved(alice: Connection, window: Window, start: float, until: float) -> None:
    while (now := time.perf_counter()) < until:
        if (code := await alice.ask("{ me { uid } }", {})) != "ok":
            raise RuntimeError(f"alice's `me` got {code}")
        if now >= start:
            window.latencies_ms.append((time.perf_counter() - now) * 1000)


async def attacker(school: Connection, attack: str, window: Window, until: float) -> None:
    document, variables = ATTACKS[attack]()
    while time.perf_counter() < until:
        window.attacks += 1
        window.codes.add(await school.ask(f"{document} #{window.attacks}", variables))


async def measure(
    alice: Connection, school: Connection, attack: str | None, pids: list[int], args: Any
) -> Window:
    window = Window()
    start = time.perf_counter() + args.warmup
    until = start + args.duration
    tasks = [asyncio.create_task(well_behaved(alice, window, start, until))]
    if attack is not None:
        tasks.append(asyncio.create_task(attacker(school, attack, window, until)))
    await asyncio.sleep(args.warmup)
    cpu, began = harness.cpu_seconds(pids), time.perf_counter()
    await asyncio.gather(*tasks)
    window.seconds = time.perf_counter() - began
    window.server_cpu_s = harness.cpu_seconds(pids) - cpu
    return window


async def rounds(network: Path, port: int, pids: list[int], args: Any) -> list[dict[str, Window]]:
    alice = Connection(port, user_context(network, "parents", "alice"))
    school = Connection(port, user_context(network, "school-a", "school-a-office"))
    found: list[dict[str, Window]] = []
    try:
        for repeat in range(args.repeats):
            windows: dict[str, Window] = {}
            for attack in harness.alternating([None, *args.attacks], repeat):
                window = await measure(alice, school, attack, pids, args)
                windows[attack or "quiet"] = window
                p99 = percentile(window.latencies_ms, 0.99)
                log(f"round {repeat + 1}, {attack or 'quiet'}: alice's p99 {p99:.2f} ms")
            found.append(windows)
    finally:
        await alice.close()
        await school.close()
    return found


def grow_report_channel(network: Path, url: str, blocks: int) -> None:
    """Admission requests to school-a and their rejections until `report` has `blocks`."""
    alice = httpx.Client(base_url=url, verify=user_context(network, "parents", "alice"))
    school = httpx.Client(base_url=url, verify=user_context(network, "school-a", "school-a-office"))

    def data(client: httpx.Client, document: str, **variables: object) -> Any:
        answer = client.post("/graphql", json={"query": document, "variables": variables}).json()
        if answer.get("errors"):
            raise RuntimeError(f"set-up failed: {answer['errors']}")
        return answer["data"]

    with alice, school:
        born = {"fullName": "Bench Child", "birthDate": "2019-04-02"}
        register = "mutation($input: RegisterChildInput!) { registerChild(input: $input) { id } }"
        child = data(alice, register, input=born)["registerChild"]["id"]
        apply = (
            'mutation($c: ID!) { createAdmissionRequest(childId: $c, school: "school-a") { id } }'
        )
        reject = 'mutation($id: ID!) { rejectAdmissionRequest(id: $id, reason: "Full.") { id } }'
        for _ in range(blocks // 2):
            admission = data(alice, apply, c=child)["createAdmissionRequest"]["id"]
            data(school, reject, id=admission)


def report(found: list[dict[str, Window]], args: Any) -> tuple[list[str], list[Result]]:
    quiet = [r["quiet"] for r in found]
    alice_cpu_ms = median(w.server_cpu_s * 1000 / len(w.latencies_ms) for w in quiet)
    quiet_p50, quiet_p99 = (median(percentile(w.latencies_ms, f) for w in quiet) for f in PS)
    rows = [f"nothing (quiet) | {quiet_p50:.2f} | {quiet_p99:.2f} | 1.00 | — | — | —"]
    ratios = {}
    for attack in args.attacks:
        windows = [r[attack] for r in found]
        p50, p99 = (median(percentile(w.latencies_ms, f) for w in windows) for f in PS)
        rate = median(w.attacks / w.seconds for w in windows)
        cpu = median(
            (w.server_cpu_s * 1000 - alice_cpu_ms * len(w.latencies_ms)) / max(w.attacks, 1)
            for w in windows
        )
        codes = ", ".join(sorted(set().union(*(w.codes for w in windows))))
        ratios[attack] = p99 / quiet_p99
        figures = f"{p50:.2f} | {p99:.2f} | {ratios[attack]:.2f} | {rate:.0f} | {cpu:.2f}"
        rows.append(f"{attack} | {figures} | {codes}")
    header = (
        "attacker sends | alice p50 ms | alice p99 ms | p99 / quiet p99 | attacker answers/s"
        " | server CPU ms per attack | attacker got"
    )
    worst = max(ratios, key=ratios.__getitem__)
    result = Result(
        "alice's p99 under the worst documents",
        f"≤ {GOAL_RATIO:g}x the quiet p99 under every kind",
        f"worst: {worst}, {ratios[worst]:.1f}x of {quiet_p99:.2f} ms",
        ratios[worst] <= GOAL_RATIO,
    )
    title = f"## Alice's latency while school-a-office attacks (`report`: {args.blocks} blocks)"
    return [title, "", *harness.table(header, rows)], [result]


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    if args.blocks < 2:
        raise SystemExit("--blocks must be at least 2.")
    harness.exit_on_sigterm()
    environment = harness.environment(args, f"; token limit {MAX_TOKENS}")
    with tempfile.TemporaryDirectory(prefix="bench-attacker-") as temp:
        network, ledger = Path(temp) / "network", f"sqlite:///{temp}/ledger.db"
        ensure_dev_network(network)
        with ServeProcess(network, ledger, Path(temp) / "serve.log") as serve:
            serve.start()
            assert serve.process is not None
            log(f"growing `report` to {args.blocks} blocks")
            grow_report_channel(network, serve.base_url, args.blocks)
            pids = harness.process_tree(serve.process.pid)
            environment.append(f"- {harness.pin(pids, args.server_core, args.client_core)}")
            found = asyncio.run(rounds(network, serve.port, pids, args))
            serve.terminate()
    body, results = report(found, args)
    return harness.publish("Attacker latency", environment, body, results, args.summary)


if __name__ == "__main__":
    sys.exit(main())
