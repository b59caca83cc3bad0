"""The plain-HTTP health port: anyone may connect, so connections are short and few."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from api import health
from api.health import HealthAddress, HealthListener
from api.services import Services
from authz.network import load_network
from tests.networks import make_network
from tests.tls_server import free_port


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except TimeoutError:
        return False


def test_idle_and_surplus_probe_connections_are_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health._ProbeProtocol, "lifetime_seconds", 0.5)
    services = Services.open(
        load_network(make_network(tmp_path / "network").directory), "memory://"
    )
    address = HealthAddress("127.0.0.1", free_port())

    async def probe() -> None:
        listener = HealthListener(services, address)
        await listener.start()
        try:
            reader, writer = await asyncio.open_connection(address.host, address.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
            writer.close()

            idle = await asyncio.open_connection(address.host, address.port)
            idle[1].write(b"GET /heal")  # a trickling client, then silence
            assert await _closed_within(idle[0], 3), "an idle connection stayed open"

            crowd = [
                await asyncio.open_connection(address.host, address.port)
                for _ in range(health.MAX_PROBE_CONNECTIONS + 8)
            ]
            surplus = await asyncio.gather(*(_closed_within(r, 0.3) for r, _ in crowd))
            assert sum(surplus) >= 8
            for _, w in [*crowd, idle]:
                w.close()
        finally:
            await listener.stop()
            await services.close()

    asyncio.run(probe())
