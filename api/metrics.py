"""Prometheus metrics: requests and latency by operation, commits, conflicts, block heights."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from strawberry.extensions import SchemaExtension

from ledger_backends import ChannelLedger

MAX_OPERATION_NAMES = 200


class _LedgerCollector(Collector):
    """Read at scrape time: block height and committer counts per channel."""

    def __init__(self, channels: dict[str, ChannelLedger]) -> None:
        self._channels = channels

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        height = GaugeMetricFamily(
            "healthledger_block_height", "Blocks in the channel's chain.", labels=["channel"]
        )
        blocks = CounterMetricFamily(
            "healthledger_blocks_committed", "Blocks this process committed.", labels=["channel"]
        )
        txs = CounterMetricFamily(
            "healthledger_transactions_committed",
            "Transactions this process committed, by validation code.",
            labels=["channel", "validation"],
        )
        for name, channel in self._channels.items():
            try:
                height.add_metric([name], channel.tip().height)
            except Exception:  # an unreachable ledger must not break the scrape
                continue
            stats = channel.committer.stats
            blocks.add_metric([name], stats.blocks)
            txs.add_metric([name, "VALID"], stats.valid)
            txs.add_metric([name, "MVCC_READ_CONFLICT"], stats.conflicts)
        yield from (height, blocks, txs)


class Metrics:
    """One set of series per server, so tests and several apps in a process do not collide."""

    def __init__(self, channels: dict[str, ChannelLedger]) -> None:
        self._channels = channels
        self._requests_registry = CollectorRegistry()
        self.requests = Counter(
            "healthledger_graphql_requests",
            "GraphQL operations by name and outcome.",
            ["operation", "outcome"],
            registry=self._requests_registry,
        )
        self.latency = Histogram(
            "healthledger_graphql_seconds",
            "GraphQL operation latency by name.",
            ["operation"],
            registry=self._requests_registry,
        )
        self._names: set[str] = set()

    def operation_label(self, name: str | None) -> str:
        """Clients choose operation names: keep the first few hundred, fold the rest."""
        if not name:
            return "anonymous"
        if name in self._names or len(self._names) < MAX_OPERATION_NAMES:
            self._names.add(name)
            return name
        return "other"

    def render(self, channels: Collection[str], *, requests: bool) -> bytes:
        """The ledger series of `channels` only, plus the GraphQL request series if `requests`.

        A caller sees the heights and commits of the channels its organisation belongs to,
        never of the others; request counts and latencies are for administrators.
        """
        visible = {name: ledger for name, ledger in self._channels.items() if name in channels}
        registry = CollectorRegistry()
        registry.register(_LedgerCollector(visible))
        body = generate_latest(registry)
        if requests:
            body = generate_latest(self._requests_registry) + body
        return body


class OperationMetrics(SchemaExtension):
    """Counts and times each GraphQL operation (the schema passes the Metrics in context)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context.context
        metrics: Metrics | None = getattr(getattr(context, "services", None), "metrics", None)
        if metrics is None:
            return
        name = metrics.operation_label(self.execution_context.operation_name)
        result = self.execution_context.result
        outcome = "error" if getattr(result, "errors", None) else "ok"
        metrics.requests.labels(name, outcome).inc()
        metrics.latency.labels(name).observe(time.perf_counter() - started)
