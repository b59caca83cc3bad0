"""Where a server's CPU goes per request: py-spy samples sorted into the parts of a request.

`ServerProfile` runs `py-spy record --gil` on a server's processes for one window: a sample
is taken only from the thread holding the GIL, so samples follow the Python work of every
thread (the event loop, the simulations' worker threads, the ledger's commit thread). Each
sample's stack is read from its innermost frame outwards, and the first frame of a module
that owns a part of the request (`PARTS`) names its part; library code (SQLAlchemy, json,
hashlib) counts for the part that called it. The parts' shares times the server CPU per
request measured in the same window give microseconds per request.

What the samples cannot see: C code that releases the GIL while it works (SQLite's own
query work, OpenSSL's record encryption, a PostgreSQL or Redis round trip). The table's
shares are of the sampled Python work, and the µs column spreads the whole measured CPU over
them, so those C costs are folded into the parts that call them.

py-spy is not a dependency of the project: install it once with `.venv/bin/pip install
py-spy` (it needs permission to read the server's memory, as root or with ptrace allowed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .harness import log

# (part, modules): a frame belongs to the part whose module prefix its file starts with.
STORES = ("sql.py", "sqlite.py", "postgres.py", "redis_streams.py", "memory.py")
APPENDING = {"append_if_tip", "_insert_block", "insert_tree_nodes", "_writing", "_current"}
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sealing and data keys", ("encryption/", "ledger_backends/keystores/")),
    ("ledger store", tuple(f"ledger_backends/{name}" for name in STORES)),
    (
        "block building (hashes, tree, validation)",
        tuple(f"ledger_backends/{n}" for n in ("committer.py", "chain.py", "ledger.py", "merkle")),
    ),
    ("simulation (read and write sets)", ("ledger_backends/simulation.py",)),
    ("contracts and gateway", ("chaincode/", "fhir_export/")),
    ("metrics and logs", ("api/metrics.py", "api/access_log.py", "logging/", "prometheus_client/")),
    ("API layer (identity, limits, resolvers)", ("api/", "authz/", "checkpoints/")),
    ("GraphQL (Strawberry, graphql-core)", ("strawberry/", "graphql/")),
    ("HTTP and TLS (uvicorn, Starlette, ssl)", ("uvicorn/", "starlette/", "httptools/", "ssl.py")),
    ("event loop and thread hand-off", ("asyncio/", "concurrent/", "threading.py", "selectors.py")),
)
OTHER = "other"
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


def part_of(stack: Sequence[str]) -> str:
    """The part a sample belongs to: that of its innermost frame in a module of a part. The
    ledger store is split into its appends (a commit) and its reads."""
    for frame in reversed(stack):
        found = FRAME.match(frame)
        if found is None:
            continue
        file = found["file"]
        for part, modules in PARTS:
            if file.startswith(modules):
                if part == "ledger store":
                    return "ledger store: " + (
                        "appends" if found["function"].split(".")[-1] in APPENDING else "reads"
                    )
                return part
    return OTHER


def tally(raw_lines: Iterable[str], classify: Callable[[Sequence[str]], str]) -> Counter[str]:
    """Samples per class, from py-spy's raw output (`frame;frame;... count` per line): each
    stack's frames, outermost first and without the process and thread names, classified."""
    counted: Counter[str] = Counter()
    for line in raw_lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        counted[classify(frames)] += int(count)
    return counted


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise SystemExit(
            "--profile needs py-spy: install it with `.venv/bin/pip install py-spy` "
            "(see the module docstring of bench/server_profile.py)."
        )
    return found


class ServerProfile:
    """py-spy recording the process `pid` and its children for `seconds`, into `output`."""

    def __init__(self, pid: int, seconds: float, output: Path, rate: int = 250) -> None:
        self.output = output
        self.command = [
            py_spy(),
            "record",
            "--gil",
            "--nonblocking",
            "--subprocesses",
            f"--rate={rate}",
            f"--duration={max(1, round(seconds))}",
            "--format=raw",
            f"--output={output}",
            f"--pid={pid}",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProfile:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.process is not None
        _, errors = self.process.communicate(timeout=60)
        if self.process.returncode != 0 or not self.output.exists():
            log(f"py-spy failed: {errors.decode(errors='replace').strip()}")

    def shares(self) -> Counter[str]:
        if not self.output.exists():
            return Counter()
        with self.output.open() as lines:
            return tally(lines, part_of)


def table_rows(counted: Counter[str], us_per_request: float) -> list[str]:
    """`part | share | µs per request` rows, largest first, and a total row."""
    total = sum(counted.values())
    if total == 0:
        return ["(no samples) | — | —"]
    rows = [
        f"{part} | {n / total:.1%} | {us_per_request * n / total:,.0f}"
        for part, n in counted.most_common()
    ]
    return [*rows, f"**all** ({total:,} samples) | 100% | {us_per_request:,.0f}"]
