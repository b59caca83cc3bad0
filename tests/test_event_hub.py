"""The event hub over a real ledger: each subscriber hears each committed event exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.events import CommittedEvent, EventHub
from ledger_backends import Event, open_ledger
from ledger_backends.testing import backend_params, proposal, scratch_url

SUBSCRIBERS = 5
# Subscribers wake this often while idle: the first wake-up says the subscription is in place.
LISTEN_SECONDS = 1.0


@pytest.mark.parametrize("backend", backend_params("memory", "sqlite"))
def test_subscribers_starting_together_each_hear_an_event_once(
    backend: str, tmp_path: Path
) -> None:
    async def run(url: str) -> list[list[str]]:
        ledger = open_ledger(url, batch_timeout_ms=1)
        channel = ledger.channel("medical")
        hub = EventHub({"medical": channel}, poll_seconds=0.01)
        heard: list[list[str]] = [[] for _ in range(SUBSCRIBERS)]

        async def listen(index: int) -> None:
            stream: AsyncIterator[CommittedEvent] = hub.subscribe("medical")
            async for event in stream:
                heard[index].append(event.tx_id)

        async def all_listening() -> None:
            while hub.subscriber_count("medical") < SUBSCRIBERS:
                await asyncio.sleep(0.01)

        # Started in one go: every subscriber is inside subscribe() before any tail exists.
        listeners = [asyncio.create_task(listen(n)) for n in range(SUBSCRIBERS)]
        try:
            await asyncio.wait_for(all_listening(), 5)
            event = Event("ChildRegistered", {"subjectId": "c1", "uids": ["alice"]})
            await channel.submit(proposal("tx-1", writes={"child/c1": 1}, events=(event,)))
            await asyncio.sleep(LISTEN_SECONDS)
        finally:
            for listener in listeners:
                listener.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)
            await hub.close()
            await ledger.aclose()
        return heard

    with scratch_url(backend, tmp_path) as url:
        assert asyncio.run(run(url)) == [["tx-1"]] * SUBSCRIBERS
