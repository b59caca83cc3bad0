"""The benchmark's results, the targets they are held to, and their Markdown tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from closed_loop import LoadPoint
from growth import FillResult

TARGET_TX_PER_S = {"memory": 50_000, "sqlite": 10_000, "redis": 15_000, "postgresql": 5_000}
CEILING_SHARE_TARGET = 0.40
GROWTH_TOLERANCE = 0.10


@dataclass(frozen=True)
class BackendResult:
    """Medians at each submitter count and of the raw ceiling, for one backend."""

    backend: str
    points: list[LoadPoint]
    ceiling_tx_per_s: float

    @property
    def best(self) -> LoadPoint:
        return max(self.points, key=lambda point: point.tx_per_s)

    def ratio(self, point: LoadPoint) -> float:
        return point.tx_per_s / self.ceiling_tx_per_s if self.ceiling_tx_per_s else math.nan

    @property
    def target(self) -> int:
        return TARGET_TX_PER_S[self.backend]

    @property
    def meets_throughput(self) -> bool:
        return self.best.tx_per_s >= self.target

    @property
    def meets_ratio(self) -> bool:
        return self.ratio(self.best) >= CEILING_SHARE_TARGET


@dataclass(frozen=True)
class GrowthResult:
    """Throughput at the same submitter count on empty ledgers and on a grown one.

    `transactions` is what the grown ledger held when measured: the fill so far
    plus the transactions of earlier measurement runs on it.
    """

    backend: str
    transactions: int
    fill: FillResult
    empty: LoadPoint
    full: LoadPoint

    @property
    def change(self) -> float:
        return self.full.tx_per_s / self.empty.tx_per_s - 1

    @property
    def met(self) -> bool:
        return self.change >= -GROWTH_TOLERANCE


def ledger_table(results: Sequence[BackendResult]) -> str:
    lines = [
        "| backend | submitters | tx/s | p50 ms | p99 ms | raw ceiling tx/s | ratio "
        "| target | met? |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for result in results:
        best = result.best
        for point in result.points:
            target, met = "", ""
            if point is best:
                target = f"≥ {result.target:,} tx/s; ratio ≥ {CEILING_SHARE_TARGET:.0%}"
                met = f"tx/s {_yes(result.meets_throughput)}; ratio {_yes(result.meets_ratio)}"
            lines.append(
                f"| {result.backend} | {point.submitters} | {point.tx_per_s:,.0f} "
                f"| {point.p50_ms:.2f} | {point.p99_ms:.2f} | {result.ceiling_tx_per_s:,.0f} "
                f"| {result.ratio(point):.1%} | {target} | {met} |"
            )
    return "\n".join(lines)


def growth_table(results: Sequence[GrowthResult]) -> str:
    lines = [
        "| backend | N in ledger | fill tx/s | submitters | empty tx/s | after-N tx/s | change "
        "| p99 ms empty → after | target | met? |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for result in results:
        n = f"{result.transactions:,}"
        if not result.fill.complete:
            n += f" (fill stopped by the time budget at {result.fill.committed:,})"
        lines.append(
            f"| {result.backend} | {n} | {result.fill.tx_per_s:,.0f} "
            f"| {result.full.submitters} | {result.empty.tx_per_s:,.0f} "
            f"| {result.full.tx_per_s:,.0f} | {result.change:+.1%} "
            f"| {result.empty.p99_ms:.1f} → {result.full.p99_ms:.1f} "
            f"| within {GROWTH_TOLERANCE:.0%} | {_yes(result.met)} |"
        )
    return "\n".join(lines)


def missed_targets(ledger: Sequence[BackendResult], growth: Sequence[GrowthResult]) -> list[str]:
    """One sentence per missed target, saying by how much."""
    missed = []
    for result in ledger:
        best = result.best
        if not result.meets_throughput:
            missed.append(
                f"{result.backend}: {best.tx_per_s:,.0f} tx/s at {best.submitters} submitters, "
                f"target {result.target:,} ({best.tx_per_s / result.target - 1:+.0%})"
            )
        if not result.meets_ratio:
            missed.append(
                f"{result.backend}: {result.ratio(best):.1%} of its raw ceiling "
                f"({result.ceiling_tx_per_s:,.0f} tx/s), target {CEILING_SHARE_TARGET:.0%}"
            )
    for outcome in growth:
        if not outcome.met:
            missed.append(
                f"{outcome.backend}: throughput after {outcome.transactions:,} transactions "
                f"changed {outcome.change:+.1%}, target within {GROWTH_TOLERANCE:.0%}"
            )
    return missed


def _yes(value: bool) -> str:
    return "yes" if value else "**no**"
