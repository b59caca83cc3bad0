"""Everything a running server holds: network, ledgers, gateway, identities, events, metrics,
and the sweep that announces consents ended by time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from authz.access import ChannelAccess
from authz.callers import CallerIdentifier
from authz.directory import NetworkDirectory
from authz.identity import IdentityVerifier
from authz.network import NetworkConfig
from authz.proxy_headers import ProxySettings
from chaincode.gateway import Gateway
from chaincode.medical import MedicalContract
from chaincode.report import ReportContract
from ledger_backends import ChannelLedger, Ledger, LedgerError, open_ledger

from .chain_checks import ChainChecks
from .connection_limits import IdentityLimits
from .consent_sweep import ConsentSweep
from .events import EventHub
from .metrics import Metrics

READY_TIMEOUT_SECONDS = 3.0


@dataclass
class Services:
    network: NetworkConfig
    ledgers: dict[str, Ledger]
    channels: dict[str, ChannelLedger]
    gateway: Gateway
    access: ChannelAccess
    identifier: CallerIdentifier
    events: EventHub
    metrics: Metrics
    chain_checks: ChainChecks
    limits: IdentityLimits
    consent_sweep: ConsentSweep

    @classmethod
    def open(
        cls, network: NetworkConfig, ledger_url: str | None = None, *, access_log: bool = True
    ) -> Services:
        """Open each channel's ledger (one store per distinct URL); `ledger_url` overrides all.

        A relative SQLite path in `ledger_url` is relative to the working directory.
        `access_log=False` records no reads (chaincode.gateway): for benchmarks only.
        """
        ledgers: dict[str, Ledger] = {}
        channels: dict[str, ChannelLedger] = {}
        try:
            for channel in network.channels:
                url = ledger_url or network.ledger_url(channel)
                if url not in ledgers:
                    ledgers[url] = open_ledger(
                        url,
                        batch_timeout_ms=network.ledger.batch_timeout_ms,
                        max_batch=network.ledger.max_batch,
                    )
                channels[channel.name] = ledgers[url].channel(channel.name)
            for ledger in ledgers.values():
                ledger.locate(channels)  # a transaction may read a channel kept in another store
        except LedgerError:
            for ledger in ledgers.values():
                ledger.close()
            raise
        access = ChannelAccess(network)
        contracts = (
            MedicalContract(emergency_minutes=network.consent.emergency_minutes),
            ReportContract(report_permission_days=network.consent.report_permission_days),
        )
        gateway = Gateway(
            channels,
            access,
            NetworkDirectory(network),
            contracts=contracts,
            access_log=access_log,
        )
        return cls(
            network=network,
            ledgers=ledgers,
            channels=channels,
            gateway=gateway,
            access=access,
            identifier=CallerIdentifier(
                IdentityVerifier.from_network(network), ProxySettings.from_network(network)
            ),
            events=EventHub(channels),
            metrics=Metrics(channels),
            chain_checks=ChainChecks(channels),
            limits=IdentityLimits(
                network.server.max_websockets_per_identity,
                network.server.max_subscriptions_per_identity,
            ),
            consent_sweep=ConsentSweep(gateway),
        )

    async def ready(self) -> bool:
        """Whether every ledger answers within a few seconds."""

        async def ping(ledger: Ledger) -> None:
            await asyncio.to_thread(ledger.store.ping)

        try:
            await asyncio.wait_for(
                asyncio.gather(*(ping(ledger) for ledger in self.ledgers.values())),
                READY_TIMEOUT_SECONDS,
            )
        except (LedgerError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        """Stop the consent sweep and event tails, record refused reads still gathering,
        finish in-flight commits, close the stores."""
        await self.consent_sweep.close()
        await self.events.close()
        await self.gateway.settle()
        for ledger in self.ledgers.values():
            await ledger.aclose()
