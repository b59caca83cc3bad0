"""Where a server worker's time goes: py-spy on the running worker(s), summarised by layer.

`py-spy record --gil --format raw` samples, at `rate` Hz, the stack of the
thread that holds the GIL in each worker process (the event-loop thread, or one
of the `asyncio.to_thread` pool threads running a contract simulation or a
block commit). On a server pinned to one core the GIL holder is what is
running Python; time in C code that releases the GIL (SQLite's step and fsync,
socket I/O) is not sampled, and the report says what share of wall time the
samples cover. The collapsed stacks are read back here and summarised as:

- inclusive shares of the layers a request passes through (they nest, so they
  do not add up to 100%);
- the functions with the most self time (the innermost frame).

`what_if` times, in this process and without TLS/HTTP, the CPU of one
registerChild `schema.execute` on a memory:// ledger with the schema as it is,
with its limit validators built once (so Strawberry's ValidationCache can hit),
and the two no-ledger schemas of bench/api_server.py: the size of the fix the
profiles point at.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PY_SPY = Path(sys.executable).with_name("py-spy")

# (label, any of these substrings in any frame of a sample). Frames look like
# "function (package/module.py)" with --nolineno.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("event-loop thread (everything below but the pool threads)", ("MainThread",)),
    ("· TLS record layer (asyncio sslproto + ssl)", ("asyncio/sslproto.py", "(ssl.py)")),
    ("· uvicorn httptools protocol (parse, send)", ("uvicorn/protocols/http",)),
    ("· Starlette app/router/middleware and Route", ("starlette/",)),
    ("· IdentityGate → CallerIdentifier.identify", ("CallerIdentifier.identify",)),
    ("· Strawberry HTTP view (JSON body in, JSON response out)", ("strawberry/http/",)),
    ("· Strawberry Schema.execute (whole operation)", ("Schema.execute (strawberry",)),
    ("· · extension hooks (all)", ("strawberry/extensions/context.py",)),
    ("· · · validation: graphql-core validate()", ("validate (graphql/validation/validate.py)",)),
    (
        "· · · new validator classes per request (limiters' create_validator)",
        ("create_validator (strawberry/extensions",),
    ),
    ("· · · parse (ParserCache miss path)", ("parse (graphql/language/parser.py)",)),
    ("· · · OperationMetrics (prometheus)", ("OperationMetrics",)),
    ("· · · ErrorCodes", ("ErrorCodes",)),
    ("· · Schema.get_extensions (per-request instances)", ("Schema.get_extensions",)),
    ("· · graphql-core execute + result", ("graphql/execution/",)),
    ("· · · permission classes", ("strawberry/permission.py",)),
    ("· · · resolver → Gateway.submit (loop side)", ("Gateway.submit", "Gateway._submit")),
    ("· · · GroupCommitter (loop side)", ("GroupCommitter",)),
    ("· · · types: Child.of / MedicalCard.of", ("api/types.py",)),
    ("· asyncio.to_thread hand-off (loop side)", ("to_thread", "run_in_executor")),
    ("pool threads (asyncio.to_thread)", ("concurrent/futures/thread.py",)),
    ("· Gateway._simulate: contract + state reads", ("Gateway._simulate",)),
    ("· · TxSimulator reads (store)", ("TxSimulator.get_state", "TxSimulator.get_prefix")),
    ("· · contract function", ("chaincode/medical.py", "chaincode/report.py")),
    ("· ChainWriter.commit: block, hashes, write", ("ChainWriter.commit",)),
    ("· · store append (SQL / Redis)", ("append_if_tip", "RedisStore.append", "_writing")),
    ("json (any thread)", ("(json/",)),
    ("hashlib / uuid (any thread)", ("uuid4", "sha256", "hashing.py")),
]
TOP_SELF = 15


@dataclass
class Profile:
    """Collapsed samples of one or more worker processes."""

    label: str
    samples: Counter[tuple[str, ...]] = field(default_factory=Counter)
    seconds: float = 0.0
    rate: int = 0
    processes: int = 1

    @property
    def total(self) -> int:
        return sum(self.samples.values())

    @property
    def coverage(self) -> float:
        """Samples ÷ what a process holding the GIL all the time would give."""
        possible = self.seconds * self.rate * self.processes
        return self.total / possible if possible else 0.0

    def layer_shares(self) -> list[tuple[str, float]]:
        total = self.total or 1
        shares = []
        for label, needles in LAYERS:
            count = sum(
                n
                for stack, n in self.samples.items()
                if any(needle in frame for frame in stack for needle in needles)
            )
            shares.append((label, count / total))
        return shares

    def top_self(self, limit: int = TOP_SELF) -> list[tuple[str, float]]:
        total = self.total or 1
        leaves: Counter[str] = Counter()
        for stack, n in self.samples.items():
            leaves[stack[-1]] += n
        return [(frame, n / total) for frame, n in leaves.most_common(limit)]


def available() -> bool:
    return PY_SPY.exists() or shutil.which("py-spy") is not None


def record(pids: Sequence[int], seconds: float, rate: int, directory: Path, label: str) -> Profile:
    """py-spy on each pid at once for `seconds`; blocks until all have finished."""
    executable = str(PY_SPY) if PY_SPY.exists() else "py-spy"
    processes = []
    outputs = []
    for pid in pids:
        output = directory / f"{label.replace(' ', '_').replace('/', '_')}-{pid}.txt"
        outputs.append(output)
        command = [executable, "record", "--pid", str(pid), "--duration", f"{seconds:g}"]
        command += ["--rate", str(rate), "--format", "raw", "--output", str(output)]
        command += ["--gil", "--nolineno", "--threads"]
        processes.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        )
    errors = []
    for process in processes:
        try:
            _, stderr = process.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if process.returncode != 0:
            errors.append(stderr.decode(errors="replace").strip()[-300:])
    if errors:
        raise RuntimeError("py-spy failed: " + " | ".join(errors))
    profile = Profile(label, seconds=seconds, rate=rate, processes=len(pids))
    for output in outputs:
        with contextlib.suppress(FileNotFoundError):
            for line in output.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if stack and count.isdigit():
                    frames = stack.split(";")
                    # "thread (123): MainThread" -> "MainThread": pool threads differ by name only.
                    frames[0] = frames[0].split(": ", 1)[-1]
                    profile.samples[tuple(frames)] += int(count)
    return profile


def render(profile: Profile, server_us: float | None = None) -> list[str]:
    """Markdown: layer shares (and µs per request if the server CPU per request is known)."""
    head = "| layer (inclusive; nested) | share of GIL-held samples |"
    rule = "|---|---:|"
    if server_us is not None:
        head += " ≈ µs per committed request |"
        rule += "---:|"
    rows = [head, rule]
    for label, share in profile.layer_shares():
        row = f"| {label} | {share:.1%} |"
        if server_us is not None:
            row += f" {share * server_us:,.0f} |"
        rows.append(row)
    rows += ["", "| top self time (innermost frame) | share |", "|---|---:|"]
    rows += [f"| `{frame}` | {share:.1%} |" for frame, share in profile.top_self()]
    return rows


# --------------------------------------------------- in process: what would close it


async def _execute_cpu_us(
    schema: Any, document: str, variables: dict[str, Any], context: Any, total: int, batch: int
) -> float:
    """Process CPU (all threads) per `schema.execute`, `batch` at a time, in µs."""
    first = await schema.execute(document, variable_values=variables, context_value=context)
    if first.errors:
        raise RuntimeError(f"what-if execute failed: {first.errors}")
    started = time.process_time()
    for _ in range(total // batch):
        results = await asyncio.gather(
            *(
                schema.execute(document, variable_values=variables, context_value=context)
                for _ in range(batch)
            )
        )
        if any(result.errors for result in results):
            raise RuntimeError("what-if execute failed")
    return (time.process_time() - started) / (total // batch * batch) * 1e6


def what_if(
    network_dir: Path, parent_cert: Path, document: str, variables: dict[str, Any]
) -> list[tuple[str, float]]:
    """CPU µs per registerChild `schema.execute` in this process on a memory:// ledger.

    No TLS, HTTP or Starlette: the GraphQL operation and the ledger commit only (the
    group committer's thread included), 64 at a time like the loaded server.
    """
    import ssl as ssl_module

    from api_server import build_nop_schema, stable_limits_schema

    from api.context import Context
    from api.schema import schema as real_schema
    from api.services import Services
    from authz.network import load_network

    network = load_network(network_dir)
    services = Services.open(network, "memory://")
    identity = services.identifier.verifier.identify(
        ssl_module.PEM_cert_to_DER_cert(parent_cert.read_text())
    )
    context = Context(identity=identity, services=services)
    schemas = [
        ("api.schema.schema as it is (memory:// ledger)", real_schema),
        ("same, depth/alias validators built once (memory:// ledger)", stable_limits_schema()),
        ("nop-graphql schema (no ledger), as served on /nop-graphql", build_nop_schema(False)),
        ("nop-graphql-ext schema (no ledger), as on /nop-graphql-ext", build_nop_schema(True)),
    ]

    async def measure() -> list[tuple[str, float]]:
        rows = []
        for label, schema in schemas:
            best = min(
                [
                    await _execute_cpu_us(schema, document, variables, context, 1_024, 64)
                    for _ in range(3)
                ]
            )
            rows.append((label, best))
        await services.close()
        return rows

    return asyncio.run(measure())
