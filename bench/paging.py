"""The time of one page of a list as the list grows: a school's admission requests on SQLite.

A fresh demo network (devkit.devnet) in a temporary directory and, for each of --totals, a
SQLite ledger of its own in which alice applied to school-a for that many children (each
registered and applied for through the gateway, in process: the contracts' own records and
indexes, committed in blocks by the group committer). A page is one GraphQL operation run in
process by the production schema (api.schema) as school-a-office, with every extension, its
cursor sealed and checked, and the contract's query on the ledger; no HTTP, no TLS:
`admissionRequests(first: --first)` for the first page, and the same after the cursor of the
middle of the list for a later one. Per repeat each total is timed for --duration seconds
after --warmup, the totals in alternating order; the figure is the median time of one page.

The baseline is the smallest total. Target: a page at every total within TARGET_RATIO of the
baseline's, for the first page and for the middle one (a page costs O(page) reads).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from api.context import Context
from api.schema import schema
from api.services import Services
from authz.identity import Identity, IdentityVerifier
from authz.network import NetworkConfig, load_network
from devkit.devnet import ensure_dev_network

from . import harness
from .harness import Result, log, median

TARGET_RATIO = 1.25
# Applications written at once: the group committer cuts blocks of up to 500 transactions.
WRITE_BATCH = 500
PAGE = """
query($first: Int!, $after: String) {
  admissionRequests(first: $first, after: $after) {
    edges { cursor node { id childId childName school status reason createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""
WHICH = ("first page", "middle page")


def arguments() -> Any:
    found = harness.parser(__doc__.splitlines()[0], repeats=5, duration=2.0, warmup=0.5)
    found.add_argument(
        "--totals", type=harness.counts, default=[100, 1_000, 10_000], help="100,1000,10000"
    )
    found.add_argument("--first", type=int, default=50, help="items per page (default 50)")
    return found


def identity(network: NetworkConfig, directory: Path, org: str, uid: str) -> Identity:
    certificate = x509.load_pem_x509_certificate(
        (directory / f"users/{org}/{uid}.pem").read_bytes()
    )
    return IdentityVerifier.from_network(network).identify(certificate.public_bytes(Encoding.DER))


@dataclass
class School:
    """One total's ledger, the server's services on it, and the cursor of its middle."""

    total: int
    services: Services
    office: Identity
    middle: str | None = None
    seconds: dict[str, list[float]] = field(default_factory=dict)

    async def page(self, first: int, after: str | None) -> dict[str, Any]:
        result = await schema.execute(
            PAGE,
            variable_values={"first": first, "after": after},
            context_value=Context(identity=self.office, services=self.services),
        )
        if result.errors or result.data is None:
            raise SystemExit(f"a page failed: {result.errors}")
        found: dict[str, Any] = result.data["admissionRequests"]
        return found


async def fill(services: Services, alice: Identity, total: int) -> None:
    """`total` children registered by alice, each applied for at school-a."""
    gateway = services.gateway

    async def apply(n: int) -> None:
        birth = {"fullName": f"Pupil {n}", "birthDate": "2019-04-02", "sex": None}
        child = await gateway.submit(
            alice, "medical", "registerChild", {**birth, "otherGuardians": None}
        )
        await gateway.create_admission_request(alice, child["id"], "school-a")

    for start in range(0, total, WRITE_BATCH):
        await asyncio.gather(*(apply(n) for n in range(start, min(total, start + WRITE_BATCH))))
        log(f"  {min(total, start + WRITE_BATCH):,} of {total:,} applications")


async def middle_cursor(school: School) -> str:
    """The cursor after the first half of the list, read in pages of 200."""
    seen, after = 0, ""
    while seen < school.total // 2:
        page = await school.page(min(200, school.total // 2 - seen), after or None)
        seen += len(page["edges"])
        after = str(page["pageInfo"]["endCursor"])
    return after


async def time_pages(school: School, which: str, args: Any) -> list[float]:
    after = None if which == "first page" else school.middle
    left = school.total if after is None else school.total - school.total // 2
    deadline = time.perf_counter() + args.warmup
    while time.perf_counter() < deadline:
        await school.page(args.first, after)
    found = []
    deadline = time.perf_counter() + args.duration
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        page = await school.page(args.first, after)
        found.append(time.perf_counter() - started)
        assert len(page["edges"]) == min(args.first, left)
    return found


async def measure(directory: Path, args: Any) -> list[School]:
    ensure_dev_network(directory)
    network = load_network(directory)
    alice = identity(network, directory, "parents", "alice")
    office = identity(network, directory, "school-a", "school-a-office")
    schools = []
    try:
        for total in args.totals:
            log(f"filling a ledger with {total:,} admission requests")
            services = Services.open(network, f"sqlite:///{directory / f'ledger-{total}.db'}")
            school = School(total, services, office)
            schools.append(school)
            started = time.perf_counter()
            await fill(services, alice, total)
            log(f"  filled in {time.perf_counter() - started:.1f} s")
            school.middle = await middle_cursor(school)
        for repeat in range(args.repeats):
            for school in harness.alternating(schools, repeat):
                for which in WHICH:
                    times = await time_pages(school, which, args)
                    school.seconds.setdefault(which, []).append(median(times))
                    log(
                        f"repeat {repeat + 1}, {school.total:,}, {which}: {len(times)} pages, "
                        f"median {median(times) * 1000:.2f} ms"
                    )
    finally:
        for school in schools:
            await school.services.close()
    return schools


def report(schools: list[School], args: Any) -> tuple[list[str], list[Result]]:
    baseline = min(schools, key=lambda s: s.total)
    ms = {(s.total, w): median(s.seconds[w]) * 1000 for s in schools for w in WHICH}
    rows = []
    for school in sorted(schools, key=lambda s: s.total):
        cells = [f"{school.total:,}"]
        for which in WHICH:
            time_ms = ms[(school.total, which)]
            cells += [f"{time_ms:.2f}", f"{time_ms / ms[(baseline.total, which)]:.2f}"]
        rows.append(" | ".join(cells))
    header = "admission requests | first page ms | ÷ baseline | middle page ms | ÷ baseline"
    body = [
        f"One page of {args.first} of school-a's admission requests (median of the repeats' "
        f"medians); baseline: {baseline.total:,}.",
        "",
        *harness.table(header, rows),
    ]
    results = []
    for which in WHICH:
        ratio = max(ms[(s.total, which)] / ms[(baseline.total, which)] for s in schools)
        results.append(
            Result(
                "paging",
                f"{which} at every total: at most {TARGET_RATIO:g} times its time at "
                f"{baseline.total:,}",
                f"worst {ratio:.2f} times",
                ratio <= TARGET_RATIO,
            )
        )
    return body, results


def main(argv: Sequence[str] | None = None) -> int:
    found = arguments()
    args = harness.parse(found, argv)
    if not 1 <= args.first <= 200 or min(args.totals) < 2:
        found.error("--first must be 1 to 200 and every total at least 2.")
    harness.exit_on_sigterm()
    environment = harness.environment(args, software=harness.versions("strawberry-graphql"))
    with tempfile.TemporaryDirectory(prefix="bench-paging-") as directory:
        schools = asyncio.run(measure(Path(directory), args))
    body, results = report(schools, args)
    return harness.publish(
        "One page of a growing list (in process, SQLite)", environment, body, results, args.summary
    )


if __name__ == "__main__":
    sys.exit(main())
