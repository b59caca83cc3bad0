"""Prometheus metrics: GraphQL requests and latency by root field, commits, conflicts, heights.

Request series are labelled by the caller's organisation, the channel a root field reads or
writes, the root field and the outcome. Every label value comes from a fixed set (the schema's
root fields, the network's organisations and channels): operation names, aliases and argument
values are chosen by clients, so they never become labels (they would leak what other callers
asked and let anyone grow the series without bound).

Block heights are read at scrape time in worker threads, never on the event loop: a store that
has stopped answering takes seconds to say so, and other requests must not wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
)
from graphql.utilities import get_operation_ast, value_from_ast_untyped
from prometheus_client import CollectorRegistry, Counter, Histogram, Metric, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from strawberry.extensions import SchemaExtension

from authz.identity import Identity
from authz.roles import Role
from ledger_backends import ChannelLedger

from .access_log import OPERATIONS_LOGGER
from .cost import opened_fields

operations_log = logging.getLogger(OPERATIONS_LOGGER)

# The channel whose records each root field reads or writes (for the few that read one and
# write the other, e.g. createReport, the channel of the record it makes or lists).
FIELD_CHANNELS: Final[Mapping[str, str]] = {
    "children": "medical",
    "pendingGuardianships": "medical",
    "child": "medical",
    "medicalCard": "medical",
    "medicalCardHistory": "medical",
    # Both channels' entries, listed to those `medical` shows to be the child's guardians.
    "accessLog": "medical",
    "agreements": "medical",
    # Recorded on both channels; counted where the child lives, which schools do not see.
    "eraseChild": "medical",
    "registerChild": "medical",
    "acceptGuardianship": "medical",
    "signAgreement": "medical",
    "acceptAgreement": "medical",
    "extendAgreement": "medical",
    "revokeAgreement": "medical",
    "updateMedicalCard": "medical",
    "emergencyAccesses": "medical",
    "openEmergencyAccess": "medical",
    "endEmergencyAccess": "medical",
    "admissionRequests": "report",
    "reportRequests": "report",
    "reports": "report",
    "report": "report",
    "createAdmissionRequest": "report",
    "acceptAdmissionRequest": "report",
    "rejectAdmissionRequest": "report",
    "createReportRequest": "report",
    "createReport": "report",
    "approveReport": "report",
    "revokeReportPermission": "report",
}
# These read the channel their `channel` argument names (no channel if it names none).
CHANNEL_ARGUMENT_FIELDS: Final = frozenset(
    {"blocks", "verifyChannel", "checkpoint", "inclusionProof", "consistencyProof", "events"}
)
# These concern only the caller: its identity, its organisation's channels, the schema.
NEUTRAL_FIELDS: Final = frozenset({"me", "channels", "__typename", "__schema", "__type"})
# The label of a root field the schema does not have, or of a document that did not parse.
UNKNOWN_FIELD: Final = "unknown"
# The channel label of a request that is no channel's (Prometheus reads "" as no label).
NO_CHANNEL: Final = ""
# Administrators of the organisation that runs the service see every organisation's requests.
OPERATOR_KIND: Final = "hospital"
# How long a scrape waits for a channel's height; a channel not read by then is left out.
HEIGHT_WAIT_SECONDS: Final = 2.0


@dataclass(frozen=True, slots=True)
class RequestedField:
    """One root field of an operation, as counted: its labels and whether it failed."""

    field: str
    channel: str
    failed: bool


class _Heights:
    """Channel heights read in worker threads, one thread per channel at most.

    A read still running when the next scrape comes (a store that stopped answering takes
    seconds to fail) is shared by that scrape rather than repeated, so an outage neither
    queues reads nor takes more threads.
    """

    def __init__(self, channels: Mapping[str, ChannelLedger]) -> None:
        self._channels = channels
        self._threads = ThreadPoolExecutor(
            max_workers=max(len(channels), 1), thread_name_prefix="healthledger-heights"
        )
        self._reads: dict[str, Future[int | None]] = {}

    async def read(self, names: Collection[str], wait: float) -> dict[str, int]:
        """The height of each named channel whose store answered within `wait` seconds."""
        reads = {name: asyncio.wrap_future(self._read(name)) for name in names}
        if reads:
            await asyncio.wait(reads.values(), timeout=wait)
        return {
            name: height
            for name, read in reads.items()
            if read.done() and (height := read.result()) is not None
        }

    def _read(self, name: str) -> Future[int | None]:
        read = self._reads.get(name)
        if read is None or read.done():
            read = self._threads.submit(self._height, name)
            self._reads[name] = read
        return read

    def _height(self, name: str) -> int | None:
        try:
            return self._channels[name].tip().height
        except Exception:  # an unreachable ledger must not break the scrape
            return None


class _LedgerCollector(Collector):
    """Block height (as read for this scrape) and committer counts per channel."""

    def __init__(self, channels: Mapping[str, ChannelLedger], heights: Mapping[str, int]) -> None:
        self._channels = channels
        self._heights = heights

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
            if name not in self._heights:  # its store did not answer: the channel is left out
                continue
            height.add_metric([name], self._heights[name])
            stats = channel.committer.stats
            blocks.add_metric([name], stats.blocks)
            txs.add_metric([name, "VALID"], stats.valid)
            txs.add_metric([name, "MVCC_READ_CONFLICT"], stats.conflicts)
        yield from (height, blocks, txs)


class _RequestCollector(Collector):
    """The request series of `source` whose org and channel labels the viewer may see."""

    def __init__(
        self, source: CollectorRegistry, channels: Collection[str], org: str | None
    ) -> None:
        self._source = source
        self._channels = {NO_CHANNEL, *channels}
        self._org = org

    def collect(self) -> Iterable[Metric]:
        for family in self._source.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [s for s in family.samples if self._visible(s.labels)]
            yield kept

    def _visible(self, labels: Mapping[str, str]) -> bool:
        return labels["channel"] in self._channels and self._org in (None, labels["org"])


class Metrics:
    """One set of series per server, so tests and several apps in a process do not collide."""

    def __init__(self, channels: dict[str, ChannelLedger]) -> None:
        self._channels = channels
        self._heights = _Heights(channels)
        self._requests_registry = CollectorRegistry()
        self._requests = Counter(
            "healthledger_graphql_requests",
            "GraphQL root fields requested, by caller organisation, channel, field and outcome.",
            ["org", "channel", "field", "outcome"],
            registry=self._requests_registry,
        )
        self._latency = Histogram(
            "healthledger_graphql_seconds",
            "Latency of the GraphQL operations requesting each root field.",
            ["org", "channel", "field"],
            registry=self._requests_registry,
        )

    @property
    def channel_names(self) -> Collection[str]:
        return self._channels.keys()

    def observe(self, org: str, fields: Iterable[RequestedField], seconds: float) -> None:
        """Count an operation once per root field it requested, each with its latency."""
        for requested in fields:
            outcome = "error" if requested.failed else "ok"
            self._requests.labels(org, requested.channel, requested.field, outcome).inc()
            self._latency.labels(org, requested.channel, requested.field).observe(seconds)

    async def render(self, channels: Collection[str], *, viewer: Identity) -> bytes:
        """What `viewer` may see: the ledger series of `channels`, and request series to admins.

        `channels` are those of the viewer's organisation: the heights and commits of other
        channels are never shown. An administrator also sees the request series on those
        channels or on none, of callers from its own organisation only, so that a school's
        administrator learns nothing of what other schools, parents or doctors ask; the
        administrators of the hospital, which runs the service, see every organisation's.
        A channel whose store does not answer within HEIGHT_WAIT_SECONDS is left out.
        """
        visible = {name: ledger for name, ledger in self._channels.items() if name in channels}
        heights = await self._heights.read(visible.keys(), HEIGHT_WAIT_SECONDS)
        registry = CollectorRegistry()
        registry.register(_LedgerCollector(visible, heights))
        body = generate_latest(registry)
        if viewer.role is Role.ADMIN:
            org = None if viewer.org_kind == OPERATOR_KIND else viewer.org
            requests = CollectorRegistry()
            requests.register(_RequestCollector(self._requests_registry, channels, org))
            body = generate_latest(requests) + body
        return body


class OperationMetrics(SchemaExtension):
    """Counts and times each GraphQL operation by root field (the context holds the Metrics)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        execution = self.execution_context
        context = execution.context
        metrics: Metrics | None = getattr(getattr(context, "services", None), "metrics", None)
        identity: Identity | None = getattr(context, "identity", None)
        if metrics is None or identity is None:
            return
        fields = _requested_fields(
            execution.graphql_document,
            execution.operation_name,
            execution.variables or {},
            getattr(execution.result, "errors", None) or [],
            metrics.channel_names,
        )
        metrics.observe(identity.org, fields, time.perf_counter() - started)
        if operations_log.isEnabledFor(logging.INFO):  # the line costs nothing when unlogged
            operations_log.info(
                "%s/%s (%s): %s",
                identity.org,
                identity.uid,
                identity.role.value,
                ", ".join(f"{f.field} {'error' if f.failed else 'ok'}" for f in fields),
            )


def _requested_fields(
    document: DocumentNode | None,
    operation_name: str | None,
    variables: dict[str, Any],
    errors: list[GraphQLError],
    channels: Collection[str],
) -> list[RequestedField]:
    """The distinct root fields of the operation run; an error without a path fails them all."""
    operation = get_operation_ast(document, operation_name) if document else None
    if document is None or operation is None:
        return [RequestedField(UNKNOWN_FIELD, NO_CHANNEL, failed=True)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    failed_keys = {error.path[0] if error.path else None for error in errors}
    found: dict[tuple[str, str], bool] = {}
    for node in opened_fields(operation.selection_set, fragments, set()):
        labels = _labels(node, variables, channels)
        key = node.alias.value if node.alias else node.name.value
        found[labels] = found.get(labels, False) or None in failed_keys or key in failed_keys
    if not found:
        return [RequestedField(UNKNOWN_FIELD, NO_CHANNEL, failed=True)]
    return [RequestedField(field, channel, failed) for (field, channel), failed in found.items()]


def _labels(
    node: FieldNode, variables: dict[str, Any], channels: Collection[str]
) -> tuple[str, str]:
    """The field and channel labels of a root field: names from the schema or the network only."""
    name = node.name.value
    if name in CHANNEL_ARGUMENT_FIELDS:
        arguments = node.arguments or ()
        argument = next((a.value for a in arguments if a.name.value == "channel"), None)
        value = value_from_ast_untyped(argument, variables) if argument else None
        return name, value if isinstance(value, str) and value in channels else NO_CHANNEL
    if name in FIELD_CHANNELS:
        return name, FIELD_CHANNELS[name]
    return (name if name in NEUTRAL_FIELDS else UNKNOWN_FIELD), NO_CHANNEL
