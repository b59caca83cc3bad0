"""Everything a running server holds: network, ledgers, key stores and keyrings, gateway,
identities, events, metrics, the checkpoint signer, the sweep that announces consents
ended by time, and the FHIR export over the gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from authz.access import ChannelAccess
from authz.callers import CallerIdentifier
from authz.directory import NetworkDirectory
from authz.identity import IdentityVerifier
from authz.network import NetworkConfig
from authz.proxy_headers import ProxySettings
from chaincode.gateway import Gateway
from chaincode.medical import MedicalContract
from chaincode.report import ReportContract
from checkpoints.log_keys import load_log_keys
from checkpoints.signer import CheckpointSigner
from encryption.keyring import Keyring
from fhir_export.export import FhirExport
from ledger_backends import ChannelLedger, Ledger, LedgerError, open_ledger
from ledger_backends.keystores import KeyStore, open_key_store

from .chain_checks import ChainChecks
from .connection_limits import IdentityLimits
from .consent_sweep import ConsentSweep
from .events import EventHub
from .metrics import Metrics

READY_TIMEOUT_SECONDS = 3.0


@dataclass
class Keyrings:
    """Each channel's keyring, over one key store per distinct key store URL."""

    stores: dict[str, KeyStore] = field(default_factory=dict)
    by_channel: dict[str, Keyring] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        network: NetworkConfig,
        ledger_url: str | None = None,
        channels: Iterable[str] | None = None,
    ) -> Keyrings:
        """The keyrings of `channels` (default: every channel of the network).

        A store is opened once per URL; it shares the ledger's database (and may leave
        flushing to the ledger's commits) only if it does so for every channel using it.
        Each keyring loads its key-encryption keys as it is made (KekError if one cannot be
        loaded); `Keyring.check` then tries them on the stored keys.
        """
        names = [c.name for c in network.channels] if channels is None else list(channels)
        locations = {name: network.key_store_url(name, ledger_url) for name in names}
        shared: dict[str, bool] = {}
        for url, same_database in locations.values():
            shared[url] = shared.get(url, True) and same_database
        opened = cls()
        try:
            for url, same_database in shared.items():
                opened.stores[url] = open_key_store(url, same_database_as_ledger=same_database)
            for name, (url, _) in locations.items():
                opened.by_channel[name] = Keyring(
                    name, network.kek_source(name), opened.stores[url]
                )
        except BaseException:
            opened.close()
            raise
        return opened

    def ping(self) -> None:
        """Ask each key store for one key (of no child): BackendUnavailableError if it does
        not answer, as a ledger's ping does."""
        asked: set[int] = set()
        for channel, keyring in self.by_channel.items():
            if id(keyring.store) not in asked:
                asked.add(id(keyring.store))
                keyring.store.get(channel, "")

    def close(self) -> None:
        for store in self.stores.values():
            store.close()
        self.stores.clear()


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
    keyrings: Keyrings
    checkpoints: CheckpointSigner

    @property
    def fhir(self) -> FhirExport:
        """FHIR Bundles of what each caller may read, read through the gateway as them."""
        return FhirExport(self.gateway)

    @classmethod
    def open(
        cls,
        network: NetworkConfig,
        ledger_url: str | None = None,
        *,
        access_log: bool = True,
        encryption: bool = True,
    ) -> Services:
        """Open each channel's ledger (one store per distinct URL); `ledger_url` overrides all.

        A relative SQLite path in `ledger_url` is relative to the working directory.
        `access_log=False` records no reads (chaincode.gateway): for benchmarks only.
        Each channel gets a keyring, its data keys in the key store the network names
        (by default the channel's ledger); `encryption=False` stores every value in clear
        and opens no key store: for benchmarks only.
        Each channel's log key is loaded for the checkpoint signer (LogKeyError if one is
        missing or not the published one, before any store is opened).
        """
        log_keys = load_log_keys(
            network.directory, network.network_id, [c.name for c in network.channels]
        )
        ledgers: dict[str, Ledger] = {}
        channels: dict[str, ChannelLedger] = {}
        keyrings = Keyrings()
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
            if encryption:
                keyrings = Keyrings.open(network, ledger_url)
        except BaseException:
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
            keyrings=keyrings.by_channel if encryption else None,
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
            keyrings=keyrings,
            checkpoints=CheckpointSigner(
                network.network_id, log_keys, lambda channel: channels[channel].proofs
            ),
        )

    async def ready(self) -> bool:
        """Whether every ledger and key store answers within a few seconds."""

        async def ping(ledger: Ledger) -> None:
            await asyncio.to_thread(ledger.store.ping)

        try:
            await asyncio.wait_for(
                asyncio.gather(
                    *(ping(ledger) for ledger in self.ledgers.values()),
                    asyncio.to_thread(self.keyrings.ping),
                ),
                READY_TIMEOUT_SECONDS,
            )
        except (LedgerError, TimeoutError):
            return False
        return True

    async def close(self) -> None:
        """Stop the consent sweep and event tails, record refused reads still gathering,
        finish in-flight commits, close the stores (the key stores last: a commit still
        finishing may have sealed with a key just added)."""
        await self.consent_sweep.close()
        await self.events.close()
        await self.gateway.settle()
        for ledger in self.ledgers.values():
            await ledger.aclose()
        self.keyrings.close()
