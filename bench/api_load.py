"""The load side of bench/api.py: keep-alive GraphQL POSTs over mutual TLS, counted per window.

Built on bench/identity.py's client: `asyncio.open_connection` with an `ssl`
context holding the caller's certificate (`Target.connect`), and its
`read_response` (response head, then the Content-Length body). Requests are
`POST <path> HTTP/1.1` with `Content-Type: application/json` and a
Content-Length, one in flight per connection. Each connection runs a `Flow`
that says what to send next and whether an answer counts as committed: HTTP 200
and a JSON body without "errors". Anything else (another status, "errors", a
broken connection) counts as an error and the connection carries on
(reconnecting if it has to).

- RegisterFlow: `registerChild` as the connection's own parent, one fixed body
  per connection (each commit makes a new child with fresh ids all the same).
- UpdateFlow: `updateMedicalCard` as dr-house on the connection's own child
  (ACTIVE agreement made beforehand), sending the `expectedVersion` the previous
  answer returned, so nothing conflicts. The nop paths keep their own count, so
  windows against them do not disturb the real card's (which /graphql and the
  /graphql-stable-limits what-if share); after an error on a ledger path the
  flow reads the card's version again before its next update.

A window opens after the warm-up: it counts answers completed inside it, keeps
the latency (write to last body byte) of each committed one, and reads CPU time
of this process, of the server's processes and of each core (/proc/stat).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from identity import Server, Target, close_quietly, process_cpu_seconds, read_response

HOST = "127.0.0.1"
SETTLE_S = 0.2
DRAIN_TIMEOUT_S = 15.0
RECONNECT_ATTEMPTS = 3

REGISTER_CHILD = (
    "mutation($input: RegisterChildInput!) "
    "{ registerChild(input: $input) { id fullName birthDate guardians doctorUid } }"
)
SIGN_AGREEMENT = (
    "mutation($child: ID!, $doctor: String!) "
    "{ signAgreement(childId: $child, doctorUid: $doctor) { id status } }"
)
ACCEPT_AGREEMENT = "mutation($id: ID!) { acceptAgreement(id: $id) { id status } }"
UPDATE_CARD = (
    "mutation($child: ID!, $version: Int!, $patch: MedicalCardPatch!) "
    "{ updateMedicalCard(childId: $child, expectedVersion: $version, patch: $patch) "
    "{ childId version updatedBy healthGroup physicalEducationGroup allergies } }"
)
READ_CARD = "query($child: ID!) { medicalCard(childId: $child) { version } }"


def post_request(path: str, port: int, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def graphql_body(query: str, variables: dict[str, Any]) -> bytes:
    return json.dumps({"query": query, "variables": variables}, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- flows


class Flow:
    """What one connection sends, and whether an answer counts as committed."""

    def request(self, path: str, port: int) -> bytes:
        raise NotImplementedError

    def handle(self, path: str, status: int, body: bytes) -> str | None:
        """None if committed, else a short reason."""
        raise NotImplementedError

    async def recover(self, target: Target, streams: Streams) -> None:
        """After an error, before the next request: nothing by default."""


def _reason(status: int, answer: Any) -> str | None:
    if status != 200:
        return f"HTTP {status}"
    if not isinstance(answer, dict):
        return "not a JSON object"
    errors = answer.get("errors")
    if errors:
        first = errors[0] if isinstance(errors, list) and errors else {}
        return str((first.get("extensions") or {}).get("code") or first.get("message"))[:60]
    return None


class RegisterFlow(Flow):
    def __init__(self, parent_uid: str, index: int) -> None:
        variables = {
            "input": {"fullName": f"Bench Child {index}", "birthDate": "2019-04-02", "sex": "F"}
        }
        self.body = graphql_body(REGISTER_CHILD, variables)
        self.cache: dict[tuple[str, int], bytes] = {}

    def request(self, path: str, port: int) -> bytes:
        key = (path, port)
        if key not in self.cache:
            self.cache[key] = post_request(path, port, self.body)
        return self.cache[key]

    def handle(self, path: str, status: int, body: bytes) -> str | None:
        try:
            answer = json.loads(body)
        except ValueError:
            return "unparsable body"
        return _reason(status, answer)


LEDGER_PATHS = ("/graphql", "/graphql-stable-limits")  # paths that really update the card


def _version_key(path: str) -> str:
    return "ledger" if path in LEDGER_PATHS else path


class UpdateFlow(Flow):
    """dr-house updates one child's card; `versions`: expected version per ledger/nop path."""

    def __init__(self, child_id: str, versions: dict[str, int], seq_start: int = 0) -> None:
        self.child_id = child_id
        self.versions = versions
        self.seq = seq_start
        self.stale = False
        self.prefix = (
            '{"query":' + json.dumps(UPDATE_CARD) + ',"variables":{"child":'
            f'{json.dumps(child_id)},"version":'
        ).encode()

    def request(self, path: str, port: int) -> bytes:
        self.seq += 1
        version = self.versions.setdefault(_version_key(path), 1)
        tail = (
            f',"patch":{{"healthGroup":{1 + self.seq % 5},"notes":"bench update {self.seq}"}}}}}}'
        )
        return post_request(path, port, self.prefix + str(version).encode() + tail.encode())

    def handle(self, path: str, status: int, body: bytes) -> str | None:
        key = _version_key(path)
        try:
            answer = json.loads(body)
        except ValueError:
            self.stale = key == "ledger"
            return "unparsable body"
        reason = _reason(status, answer)
        if reason is None:
            try:
                self.versions[key] = int(answer["data"]["updateMedicalCard"]["version"])
            except (KeyError, TypeError, ValueError):
                reason = "no version in the answer"
        if reason is not None and key == "ledger":
            self.stale = True
        return reason

    async def recover(self, target: Target, streams: Streams) -> None:
        if not self.stale:
            return
        answer = await call(streams, target, READ_CARD, {"child": self.child_id})
        self.versions["ledger"] = int(answer["data"]["medicalCard"]["version"])
        self.stale = False


# ----------------------------------------------------------------------- plumbing


@dataclass
class Streams:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


async def call(
    streams: Streams, target: Target, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    """One GraphQL request on an open connection; raises on HTTP or GraphQL errors."""
    body = graphql_body(query, variables)
    streams.writer.write(post_request("/graphql", target.server.port, body))
    status, body = await read_response(streams.reader)
    answer: dict[str, Any] = json.loads(body)
    if status != 200 or answer.get("errors"):
        raise RuntimeError(f"{query.split('{')[1].split('(')[0].strip()}: {status} {body[:300]!r}")
    return answer


@dataclass
class LoadState:
    """Shared by the connections of one group of windows."""

    path: str
    running: bool = True
    recording: bool = False
    committed: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.committed = 0
        self.errors = 0
        self.latencies = []
        self.reasons = {}

    def error(self, reason: str) -> None:
        if self.recording:
            self.errors += 1
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


async def connection_worker(target: Target, streams: Streams, flow: Flow, state: LoadState) -> None:
    port = target.server.port
    failures = 0
    while state.running:
        path = state.path
        try:
            await flow.recover(target, streams)
            data = flow.request(path, port)
            started = time.perf_counter()
            streams.writer.write(data)
            status, body = await read_response(streams.reader)
            finished = time.perf_counter()
        except (OSError, EOFError, asyncio.IncompleteReadError, ssl.SSLError, ValueError) as exc:
            state.error(type(exc).__name__)
            failures += 1
            if failures > RECONNECT_ATTEMPTS:
                raise
            await close_quietly(streams.writer)
            streams.reader, streams.writer = await target.connect()
            continue
        failures = 0
        reason = flow.handle(path, status, body)
        if not state.recording:
            continue
        if reason is None:
            state.committed += 1
            state.latencies.append(finished - started)
        else:
            state.error(reason)


# ------------------------------------------------------------------------ samples


def core_busy_ticks(cores: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per core from /proc/stat."""
    found: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        core = int(name[3:])
        if core in cores:
            ticks = [int(v) for v in values[:8]]
            idle = ticks[3] + ticks[4]
            found[core] = (sum(ticks) - idle, sum(ticks))
    return found


def pids_cpu(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += process_cpu_seconds(pid)
    return total


@dataclass(frozen=True)
class Sample:
    """One measurement window."""

    committed: int
    errors: int
    seconds: float
    latencies: tuple[float, ...]
    client_cpu_s: float
    server_cpu_s: float
    core_busy: dict[int, float]
    reasons: dict[str, int]

    @property
    def rate(self) -> float:
        return self.committed / self.seconds

    @property
    def error_rate(self) -> float:
        return self.errors / self.seconds

    def percentile_ms(self, fraction: float) -> float:
        if not self.latencies:
            return math.nan
        rank = max(1, math.ceil(fraction * len(self.latencies)))
        return self.latencies[rank - 1] * 1000

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(0.50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(0.99)

    @property
    def server_us(self) -> float:
        return self.server_cpu_s / self.committed * 1e6 if self.committed else math.nan

    @property
    def client_us(self) -> float:
        return self.client_cpu_s / self.committed * 1e6 if self.committed else math.nan

    @property
    def server_busy(self) -> float:
        return self.server_cpu_s / self.seconds

    @property
    def client_busy(self) -> float:
        return self.client_cpu_s / self.seconds


async def window(
    state: LoadState, server_pids: Sequence[int], seconds: float, cores: Sequence[int]
) -> Sample:
    state.reset()
    begin_cores = core_busy_ticks(cores)
    begin = (time.perf_counter(), time.process_time(), pids_cpu(server_pids))
    state.recording = True
    await asyncio.sleep(seconds)
    state.recording = False
    end = (time.perf_counter(), time.process_time(), pids_cpu(server_pids))
    end_cores = core_busy_ticks(cores)
    busy = {
        core: (end_cores[core][0] - begin_cores[core][0])
        / max(1, end_cores[core][1] - begin_cores[core][1])
        for core in cores
    }
    return Sample(
        committed=state.committed,
        errors=state.errors,
        seconds=end[0] - begin[0],
        latencies=tuple(sorted(state.latencies)),
        client_cpu_s=end[1] - begin[1],
        server_cpu_s=end[2] - begin[2],
        core_busy=busy,
        reasons=dict(state.reasons),
    )


@dataclass(frozen=True)
class Group:
    """Keep-alive connections to one server, each with its flow, measured on several paths."""

    server: Server
    server_pids: tuple[int, ...]
    contexts: Sequence[ssl.SSLContext]
    flows: Sequence[Flow]
    paths: Sequence[str]


async def run_group(
    group: Group, warmup_s: float, duration_s: float, cores: Sequence[int]
) -> list[tuple[str, Sample]]:
    """Open the connections, warm up on the first path, then one window per path, in order."""
    targets = [Target(group.server, context) for context in group.contexts]
    streams = [Streams(*await target.connect()) for target in targets]
    state = LoadState(group.paths[0])
    workers = [
        asyncio.create_task(connection_worker(target, stream, flow, state))
        for target, stream, flow in zip(targets, streams, group.flows, strict=True)
    ]

    async def measure() -> list[tuple[str, Sample]]:
        await asyncio.sleep(warmup_s)
        samples = []
        for path in group.paths:
            if path != state.path:
                state.path = path
                await asyncio.sleep(SETTLE_S)
            samples.append((path, await window(state, group.server_pids, duration_s, cores)))
        return samples

    measuring = asyncio.create_task(measure())
    try:
        await asyncio.wait([measuring, *workers], return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not measuring.done():
            measuring.cancel()
        state.running = False
        done, pending = await asyncio.wait(workers, timeout=DRAIN_TIMEOUT_S)
        for task in pending:
            task.cancel()
        for stream in streams:
            await close_quietly(stream.writer)
    for task in done:
        task.result()
    return measuring.result()


async def drive_for(group: Group, seconds: float, during: Callable[[], Any] | None = None) -> None:
    """Load the server on the group's first path for `seconds` (used while profiling)."""
    targets = [Target(group.server, context) for context in group.contexts]
    streams = [Streams(*await target.connect()) for target in targets]
    state = LoadState(group.paths[0])
    workers = [
        asyncio.create_task(connection_worker(target, stream, flow, state))
        for target, stream, flow in zip(targets, streams, group.flows, strict=True)
    ]
    try:
        if during is not None:
            await asyncio.to_thread(during)
        else:
            await asyncio.sleep(seconds)
    finally:
        state.running = False
        await asyncio.wait(workers, timeout=DRAIN_TIMEOUT_S)
        for stream in streams:
            await close_quietly(stream.writer)


# -------------------------------------------------------------------------- setup


async def make_update_children(
    server: Server,
    parent_contexts: Sequence[ssl.SSLContext],
    doctor_context: ssl.SSLContext,
    doctor_uid: str,
) -> list[str]:
    """Per parent context, a child registered by that parent with an ACTIVE agreement."""
    doctor = Target(server, doctor_context)

    async def one(index: int, context: ssl.SSLContext) -> str:
        parent = Target(server, context)
        streams = Streams(*await parent.connect())
        doctor_streams = Streams(*await doctor.connect())
        try:
            variables = {
                "input": {
                    "fullName": f"Card Child {index}",
                    "birthDate": "2018-09-01",
                    "sex": "M",
                }
            }
            child = (await call(streams, parent, REGISTER_CHILD, variables))["data"][
                "registerChild"
            ]["id"]
            agreement = (
                await call(streams, parent, SIGN_AGREEMENT, {"child": child, "doctor": doctor_uid})
            )["data"]["signAgreement"]["id"]
            accepted = await call(doctor_streams, doctor, ACCEPT_AGREEMENT, {"id": agreement})
            if accepted["data"]["acceptAgreement"]["status"] != "ACTIVE":
                raise RuntimeError(f"agreement {agreement} is not ACTIVE: {accepted}")
            return str(child)
        finally:
            await close_quietly(streams.writer)
            await close_quietly(doctor_streams.writer)

    return list(await asyncio.gather(*(one(i, ctx) for i, ctx in enumerate(parent_contexts))))
