"""The plain-HTTP health port: anyone may connect, so connections are short and few."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from api import health
from api.health import HealthAddress, HealthListener
from api.services import Services
from authz.network import load_network
from tests.networks import make_network


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except TimeoutError:
        return False


def test_idle_and_surplus_probe_connections_are_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=health.log.name)
    monkeypatch.setattr(health._ProbeProtocol, "lifetime_seconds", 0.5)
    services = Services.open(
        load_network(make_network(tmp_path / "network").directory), "memory://"
    )

    async def probe() -> None:
        listener = HealthListener(services, HealthAddress("127.0.0.1", 0))
        await listener.start()
        address = listener.address
        assert address.port != 0, "the listener knows the port the system picked"
        assert f"Health probes on http://127.0.0.1:{address.port} " in caplog.text
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
