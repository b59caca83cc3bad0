"""Who may fetch a channel's signed checkpoint, and `GET /checkpoint/CHANNEL`; the log's
verifier key that checks it, `GET /log/CHANNEL.pub`.

Members of the channel's organisations only, as for its blocks. Anyone else gets the
answer an unknown channel gets (GraphQL NOT_FOUND, HTTP 404), so a caller learns nothing
of channels outside its reach, not even that they exist. A channel whose blocks all
predate trees has no tree head to sign until its next block: HTTP 503 says so. The key is
the line of the network's `log/CHANNEL.pub` (the server starts only when it is the signing
key's), which the web app pins on first use to verify records in the browser.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from authz.identity import Identity
from checkpoints.signer import Checkpoint
from domain.errors import NotFoundError
from ledger_backends.proofs import TreeNotAvailableError

from .services import Services
from .web import NO_STORE

CHECKPOINT_PATH = "/checkpoint/{channel}"
LOG_KEY_PATH = "/log/{channel}.pub"
NOTE_MEDIA_TYPE = "text/plain; charset=utf-8"


def unseen_channel(channel: str) -> str:
    """The one answer for a channel that does not exist and for one the caller is not in."""
    return f"No channel {channel!r} is open to your organisation."


async def channel_checkpoint(services: Services, identity: Identity, channel: str) -> Checkpoint:
    """The channel's current signed checkpoint, for a member of the channel.

    NotFoundError for an unknown channel and for a caller outside it alike.
    """
    if not services.access.is_member(identity, channel):
        raise NotFoundError(unseen_channel(channel))
    return await asyncio.to_thread(services.checkpoints.checkpoint, channel)


def checkpoint_endpoint(services: Services) -> Callable[[Request], Awaitable[Response]]:
    """GET /checkpoint/CHANNEL (behind the identity gate): the signed note as text."""

    async def checkpoint(request: Request) -> Response:
        identity: Identity = request.scope["state"]["identity"]
        try:
            signed = await channel_checkpoint(services, identity, request.path_params["channel"])
        except NotFoundError as refusal:
            return PlainTextResponse(f"{refusal}\n", status_code=404, headers=NO_STORE)
        except TreeNotAvailableError as no_tree:
            return PlainTextResponse(f"{no_tree}\n", status_code=503, headers=NO_STORE)
        return Response(signed.note, media_type=NOTE_MEDIA_TYPE, headers=NO_STORE)

    return checkpoint


def log_key_endpoint(services: Services) -> Callable[[Request], Awaitable[Response]]:
    """GET /log/CHANNEL.pub (behind the identity gate): the log's verifier key line, for a
    member of the channel; 404 as for an unknown channel to anyone else."""

    async def log_key(request: Request) -> Response:
        identity: Identity = request.scope["state"]["identity"]
        channel = request.path_params["channel"]
        if not services.access.is_member(identity, channel):
            return PlainTextResponse(
                f"{unseen_channel(channel)}\n", status_code=404, headers=NO_STORE
            )
        line = services.checkpoints.verifier_key(channel)
        return Response(f"{line}\n", media_type=NOTE_MEDIA_TYPE, headers=NO_STORE)

    return log_key
