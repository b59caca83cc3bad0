"""What executing one mutation costs in Strawberry, against graphql-core alone: the floor.

The API's request CPU has a part no ledger change can move: running the GraphQL operation.
This measures that part in process, with no HTTP, TLS or ledger: `registerChild` on the
no-ledger root types of `python -m bench.servers` (the real mutation's signature and
permission class, a constant answer), executed

- by the schema the server builds (`api.schema.build_schema`, every extension of the API:
  the parsed document and the validation outcome come from its caches), as the server runs
  each request; and
- by graphql-core's `execute` on the same GraphQL schema, the document parsed and validated
  once beforehand: what is left without Strawberry's request machinery (its extension
  runner, execution context, argument conversion and permission extension).

Per repeat both are timed for --duration seconds after --warmup, in alternating order; the
figures are medians of µs per execution, and their ratio per repeat. No target: the report
says how much of the no-ledger rate a different execution path could give back.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from graphql import ExecutionResult, parse, validate
from graphql import execute as core_execute

from api.context import Context
from api.schema import build_schema
from authz.identity import Identity
from authz.roles import Role

from . import harness
from .harness import Result, log, median
from .servers import NopMutation, NopQuery

REGISTER_CHILD = (
    "mutation($input: RegisterChildInput!) "
    "{ registerChild(input: $input) { id fullName birthDate guardians doctorUid } }"
)
VARIABLES = {"input": {"fullName": "Bench Child", "birthDate": "2019-04-02", "sex": "F"}}
PARENT = Identity(
    uid="alice",
    msp="ParentsMSP",
    org="parents",
    org_kind="parents",
    role=Role.PARENT,
    name="Alice",
    fingerprint="bench",
)
STRAWBERRY, CORE = "Strawberry, the API's extensions", "graphql-core execute"


class NoServices:
    """What the context holds instead of a server's services: no metrics to observe."""

    metrics = None


def context() -> Context:
    return Context(identity=PARENT, services=NoServices())  # type: ignore[arg-type]


def executions() -> dict[str, Callable[[], Awaitable[None]]]:
    schema = build_schema(NopQuery, NopMutation, None)
    document = parse(REGISTER_CHILD)
    if validate(schema._schema, document):
        raise RuntimeError("the benchmark's document does not validate")

    async def strawberry_execute() -> None:
        found = await schema.execute(
            REGISTER_CHILD, variable_values=VARIABLES, context_value=context()
        )
        _check(found)

    async def graphql_core_execute() -> None:
        found = core_execute(
            schema._schema, document, variable_values=VARIABLES, context_value=context()
        )
        _check(await found if inspect.isawaitable(found) else found)

    return {STRAWBERRY: strawberry_execute, CORE: graphql_core_execute}


def _check(result: ExecutionResult | Any) -> None:
    if result.errors:
        raise RuntimeError(f"the execution failed: {result.errors}")


async def timed(run: Callable[[], Awaitable[None]], warmup: float, duration: float) -> float:
    """µs per execution over `duration` seconds, after `warmup` seconds of the same."""
    elapsed, count = 0.0, 0
    for window in (warmup, duration):
        count, began = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - began) < window:
            await run()
            count += 1
    return elapsed / max(count, 1) * 1e6


async def measure(args: Any) -> dict[str, list[float]]:
    runs = executions()
    found: dict[str, list[float]] = {name: [] for name in (STRAWBERRY, CORE)}
    for repeat in range(args.repeats):
        for name in harness.alternating(list(runs), repeat):
            found[name].append(await timed(runs[name], args.warmup, args.duration))
            log(f"repeat {repeat + 1}: {name} {found[name][-1]:,.0f} µs")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    found = harness.parser(__doc__.splitlines()[0], repeats=7, duration=1.0, warmup=0.3)
    args = harness.parse(found, argv)
    software = harness.versions("strawberry-graphql", "graphql-core")
    environment = harness.environment(args, software=software)
    times = asyncio.run(measure(args))
    ratios = [s / c for s, c in zip(times[STRAWBERRY], times[CORE], strict=True)]
    rows = [
        f"{name} | {median(times[name]):,.0f} | {min(times[name]):,.0f} | {max(times[name]):,.0f}"
        for name in (STRAWBERRY, CORE)
    ]
    body = [
        "## µs per registerChild execution, in process (no HTTP, TLS or ledger)",
        "",
        *harness.table("execution | median µs | fastest | slowest", rows),
        "",
        f"Strawberry ÷ graphql-core per repeat: median {median(ratios):.2f}x "
        f"({', '.join(f'{r:.2f}' for r in ratios)}).",
    ]
    strawberry_us, core_us = median(times[STRAWBERRY]), median(times[CORE])
    floor = Result(
        "Strawberry ÷ graphql-core, one registerChild in process",
        "none (the floor of the no-ledger rate)",
        f"{median(ratios):.2f}x ({strawberry_us:,.0f} vs {core_us:,.0f} µs)",
        None,
    )
    return harness.publish(
        "GraphQL execution: Strawberry against graphql-core",
        environment,
        body,
        [floor],
        args.summary,
    )


if __name__ == "__main__":
    sys.exit(main())
