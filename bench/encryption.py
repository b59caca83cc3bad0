"""The cost of encryption at rest: ledger commits/s and the API's committed mutations/s, sealed
against in clear, measured in the same run.

1. Ledger (--backends): --submitters closed loops of one-key commits
   (ledger_workloads.commits) on a fresh scratch store per run, each key a child of its own,
   each value either small (two fields, the ledger benchmark's) or a medical card as the
   story leaves it (ledger_workloads.story_card).
   Sealed, every value is sealed as the transaction context seals it (`Sealer.seal`: the
   child's data key from a Keyring over the store's own key store, AES-256-GCM, padded,
   bound to channel, key, child and transaction); in clear, it is written as it is. The two
   alternate per repeat; tx/s counts commits returned in the window.
2. API (--configs BACKEND:WORKERS): two `python -m bench.servers api` processes, each on a
   scratch ledger of its own, one with encryption (as `healthledger serve` runs) and one built
   with the bench-only `Services.open(..., encryption=False)`. At each --connections count,
   one request in flight per connection: registerChild as the connection's own parent (a new
   child, so a new data key per mutation: the dearest case) and updateMedicalCard as
   dr-house on the connection's own child (api_throughput's flows). Committed/s counts HTTP
   200 answers without "errors". Per repeat both servers are measured back to back, in
   alternating order; figures are medians.

Target: sealed at least 85% of the rate in clear, for the ledger and for both mutations.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from devkit.devnet import ensure_dev_network
from encryption import Kek, Keyring, Sealer
from ledger_backends import open_ledger
from ledger_backends.keystores import open_key_store
from ledger_backends.testing import scratch_url

from . import harness
from .api_throughput import API, REGISTER, UPDATE, Bench
from .harness import Result, log, median
from .ledger_workloads import CHANNEL, SMALL_VALUE, Sample, Seal, commits, story_card
from .servers import BenchServer

RATIO_TARGET = 0.85
SEALED, CLEAR = "on", "off"  # the server's --encryption
OPERATIONS = (REGISTER, UPDATE)
VALUES = ("small", "card")
LedgerKey = tuple[str, str, bool]  # backend, value, sealed


def arguments() -> Any:
    found = harness.parser(__doc__.splitlines()[0], repeats=5, duration=2.0, warmup=0.5)
    backends = harness.names(harness.BACKENDS)
    every = ",".join(harness.BACKENDS)
    found.add_argument("--backends", type=backends, default=harness.BACKENDS, help=every)
    found.add_argument("--submitters", type=int, default=256, help="ledger: 256")
    default = "sqlite:1,postgresql:2"
    configs = harness.configs
    found.add_argument("--configs", type=configs, default=configs(default), help=default)
    found.add_argument("--connections", type=harness.counts, default=[32], help="api: 32")
    harness.pinning_options(found)
    return found


# -- the ledger ---------------------------------------------------------------------------------


def ledger_run(backend: str, value: dict[str, Any], sealed: bool, args: Any) -> Sample:
    """One window of closed-loop commits of `value` on a fresh store, sealed or in clear."""
    with scratch_url(backend) as url:
        gc.collect()
        ledger = open_ledger(url)
        keys = open_key_store(url, same_database_as_ledger=True)
        keyring = Keyring(CHANNEL, [Kek.generate()], keys)

        def seal(channel: str, key: str, tx_id: str, value: dict[str, Any]) -> Any:
            return Sealer(keyring, tx_id).seal(key, value, child=key.rsplit("/", 1)[-1])

        async def run() -> Sample:
            try:
                window = {"warmup_s": args.warmup, "duration_s": args.duration}
                chosen: Seal | None = seal if sealed else None
                return await commits(ledger, args.submitters, value=value, seal=chosen, **window)
            finally:
                await ledger.aclose()
                keys.close()

        return asyncio.run(run())


def measure_ledger(args: Any) -> dict[LedgerKey, list[Sample]]:
    values = {"small": SMALL_VALUE, "card": story_card()}
    samples: dict[LedgerKey, list[Sample]] = {}
    for backend in args.backends:
        for repeat in range(args.repeats):
            for name in VALUES:
                for sealed in harness.alternating((True, False), repeat):
                    sample = ledger_run(backend, values[name], sealed, args)
                    samples.setdefault((backend, name, sealed), []).append(sample)
                    how = "sealed" if sealed else "in clear"
                    log(f"[{backend}] ledger, {name} value {how}: {sample.ops_per_s:,.0f} tx/s")
    return samples


def ledger_report(
    args: Any, samples: dict[LedgerKey, list[Sample]]
) -> tuple[list[str], list[Result]]:
    rows, results = [], []
    for backend in args.backends:
        for name in VALUES:
            runs = [samples[backend, name, on] for on in (True, False)]
            sealed, clear = (median(s.ops_per_s for s in side) for side in runs)
            cpu = [median(s.cpu_ms_per_op * 1000 for s in side) for side in runs]
            ratio = sealed / clear
            rows.append(
                f"{backend} | {name} | {args.submitters} | {sealed:,.0f} | {clear:,.0f}"
                f" | {ratio:.0%} | {cpu[0]:,.0f} · {cpu[1]:,.0f}"
            )
            measured = f"{ratio:.0%} of {clear:,.0f} tx/s"
            met = ratio >= RATIO_TARGET
            label = f"ledger sealed ÷ in clear, {backend}, {name} value"
            results.append(Result(label, f"≥ {RATIO_TARGET:.0%}", measured, met))
    header = (
        "backend | value | submitters | sealed tx/s | in clear tx/s | sealed ÷ in clear"
        " | CPU µs/tx: sealed · in clear"
    )
    return ["## Ledger commits, sealed and in clear", "", *harness.table(header, rows)], results


# -- the API ------------------------------------------------------------------------------------

ApiKey = tuple[str, int, str]  # backend, workers, --encryption


def label(key: ApiKey) -> str:
    backend, workers, switch = key
    return f"{backend}, {workers} worker(s), encryption {switch}"


def measure_config(directory: Path, bench: Bench, config: tuple[str, int]) -> str:
    """Both servers, each on a scratch ledger of its own, measured; says how they were pinned."""
    backend, workers = config
    args = bench.args
    with ExitStack() as stack:
        started: dict[str, BenchServer] = {}
        for switch in (SEALED, CLEAR):
            url = stack.enter_context(scratch_url(backend))
            command = ["api", f"--network={bench.network}", f"--ledger={url}"]
            command += [f"--workers={workers}", f"--encryption={switch}"]
            log_file = directory / f"{backend}-{workers}-{switch}.log"
            server = BenchServer(command, args.server_core, log_file)
            started[switch] = stack.enter_context(server)
        trees = {switch: harness.process_tree(s.process.pid) for switch, s in started.items()}
        pinning = harness.pin([*trees[SEALED], *trees[CLEAR]], args.server_core, args.client_core)
        updates = {switch: bench.children(server.port) for switch, server in started.items()}
        for repeat in range(args.repeats):
            for n in args.connections:
                for operation in OPERATIONS:
                    for switch in harness.alternating((SEALED, CLEAR), repeat):
                        cpu = _cpu_of(trees[switch])
                        flows = bench.connections(operation, n, updates[switch])
                        cell = (label((backend, workers, switch)), operation, n)
                        bench.run(cell, (started[switch].port, [API], cpu), flows)
    return pinning


def _cpu_of(pids: list[int]) -> Callable[[], float]:
    return lambda: harness.cpu_seconds(pids)


def api_report(args: Any, bench: Bench) -> tuple[list[str], list[Result]]:
    rows, results = [], []
    for backend, workers in args.configs:
        on, off = label((backend, workers, SEALED)), label((backend, workers, CLEAR))
        for operation in OPERATIONS:
            for n in args.connections:
                sealed, clear = (bench.median(side, operation, API, n) for side in (on, off))
                us = [bench.median(side, operation, API, n, "server_us") for side in (on, off)]
                p99 = [bench.median(side, operation, API, n, "p99_ms") for side in (on, off)]
                rows.append(
                    f"{backend} | {workers} | {operation} | {n} | {sealed:,.0f} | {clear:,.0f}"
                    f" | {sealed / clear:.0%} | {p99[0]:.1f} · {p99[1]:.1f}"
                    f" | {us[0]:,.0f} · {us[1]:,.0f} | {us[1] / us[0]:.0%}"
                )
            best = max(args.connections, key=lambda n: bench.median(on, operation, API, n))
            sealed, clear = (bench.median(side, operation, API, best) for side in (on, off))
            ratio = sealed / clear
            name = f"API {operation} sealed ÷ in clear, {backend}, {workers} worker(s)"
            measured = f"{ratio:.0%} ({sealed:,.0f} of {clear:,.0f}/s at {best} connections)"
            results.append(Result(name, f"≥ {RATIO_TARGET:.0%}", measured, ratio >= RATIO_TARGET))
    header = (
        "backend | workers | operation | conns | sealed /s | in clear /s | sealed ÷ in clear"
        " | p99 ms: sealed · in clear | server CPU µs/req: sealed · in clear"
        " | ratio by server CPU"
    )
    title = "## Committed mutations/s over mutual TLS, sealed and in clear"
    return [title, "", *harness.table(header, rows)], results


def main(argv: Sequence[str] | None = None) -> int:
    args = harness.parse(arguments(), argv)
    harness.exit_on_sigterm()
    software = harness.versions("cryptography", "uvicorn", "strawberry-graphql")
    environment = harness.environment(args, software=software)
    ledger_body, results = ledger_report(args, measure_ledger(args))
    with tempfile.TemporaryDirectory(prefix="bench-encryption-") as temp:
        directory = Path(temp)
        ensure_dev_network(directory / "network")
        bench = Bench(directory / "network", args)
        pinning = [measure_config(directory, bench, config) for config in args.configs]
    environment.append(f"- {pinning[-1]}")
    api_body, api_results = api_report(args, bench)
    title = "Encryption at rest: sealed against in clear"
    body = [*ledger_body, "", *api_body]
    return harness.publish(title, environment, body, [*results, *api_results], args.summary)


if __name__ == "__main__":
    sys.exit(main())
