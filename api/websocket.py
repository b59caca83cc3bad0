"""graphql-transport-ws for callers whose certificate may be revoked or expire while connected.

A websocket is identified once, when it opens (api.app.IdentityGate), but stays open for as
long as the client likes and carries queries and mutations as well as subscriptions. The
handler here checks the certificate again, against the current CRLs and its validity period:

- before each `subscribe` message is handled: a refused one never runs, so nothing is read
  and nothing is written in the caller's name;
- before each message the server sends (results, events, errors, acknowledgements);
- every CERTIFICATE_RECHECK_SECONDS while the socket is open, idle or not.

When a check fails, each running operation gets an `error` message with UNAUTHENTICATED, the
operations are cancelled and the socket is closed with code 4403, "certificate revoked".
The verifier re-reads the CRLs at most once a second, so a revoked certificate's socket
closes within about two seconds of `healthledger revoke` (the promise is five).

Each `subscribe` runs the document api.persisted_operations resolves from its payload (by
hash, or a text the server's mode allows); a refused one gets an `error` and never runs.

One identity holds at most `server.max_websockets_per_identity` sockets (the next is closed
with 4429, "too many websockets for this certificate") and runs at most
`server.max_subscriptions_per_identity` operations over them (the next `subscribe` gets an
`error` with BAD_USER_INPUT; the socket stays open). Both counts are per worker process.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import TYPE_CHECKING, cast

from graphql import GraphQLError
from starlette.websockets import WebSocketDisconnect
from starlette.websockets import WebSocketDisconnected as WebSocketAlreadyClosed
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ErrorMessage,
    Message,
    SubscribeMessage,
)

from domain.errors import RefusalError, UnauthenticatedError

from .context import Context

if TYPE_CHECKING:
    from .app import HealthLedgerGraphQL

log = logging.getLogger("healthledger.websocket")

CERTIFICATE_RECHECK_SECONDS = 1.0
CERTIFICATE_REFUSED_CODE = 4403
CERTIFICATE_REFUSED_REASON = "certificate revoked"
TOO_MANY_CODE = 4429
TOO_MANY_WEBSOCKETS_REASON = "too many websockets for this certificate"
# Whichever layer notices first, these all mean the socket can no longer be written to.
_GONE = (WebSocketDisconnect, WebSocketAlreadyClosed, WebSocketDisconnected)


class CertificateCheckedTransportWS(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, serving only a still-valid certificate.

    Guarantees: once a check has failed, no operation starts and nothing is sent but each
    running operation's UNAUTHENTICATED error and the close; a socket whose certificate stops
    being accepted is closed within `recheck_seconds` plus the verifier's CRL re-read
    interval, even if it is idle.
    """

    recheck_seconds = CERTIFICATE_RECHECK_SECONDS
    _refused = False

    async def handle(self) -> None:
        limits = self.context.services.limits
        identity = self.context.identity
        if not limits.admit(identity, self):
            log.info("Refusing a websocket of %s/%s: at the cap", identity.org, identity.uid)
            with suppress(*_GONE):
                await self.websocket.close(TOO_MANY_CODE, TOO_MANY_WEBSOCKETS_REASON)
            return
        try:
            watcher = asyncio.create_task(self._watch_certificate())
            try:
                await super().handle()
            finally:
                watcher.cancel()
                await asyncio.wait([watcher])
        finally:
            limits.release(identity, self)  # however the socket ended, its slots are free

    async def handle_message(self, message: Message) -> None:
        if not self._refused:  # what arrives after the refusal, before the close, is dropped
            await super().handle_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if not await self._certificate_accepted():
            return
        starts = self.connection_acknowledged and message["id"] not in self.operations
        if starts and not self.context.services.limits.may_start(self.context.identity):
            await self._refuse_operation(message["id"])
            return
        if starts and not await self._resolve_document(message):
            return
        await super().handle_subscribe(message)

    async def _resolve_document(self, message: SubscribeMessage) -> bool:
        """Puts the document api.persisted_operations resolves into the payload; False, after
        answering the refusal with an `error`, when the operation may not run."""
        payload = message["payload"]
        query, extensions = payload.get("query"), payload.get("extensions")
        operations = cast("HealthLedgerGraphQL", self.view).persisted_operations
        try:
            resolved = operations.resolve(
                query if isinstance(query, str) else None,
                extensions if isinstance(extensions, dict) else None,
            )
        except RefusalError as refusal:
            error = GraphQLError(str(refusal), extensions={"code": refusal.code})
            await self.send_message(
                ErrorMessage(id=message["id"], type="error", payload=[error.formatted])
            )
            return False
        if resolved.query is not None:
            payload["query"] = resolved.query
        return True

    async def send_message(self, message: Message) -> None:
        if await self._certificate_accepted():
            await super().send_message(message)

    async def _refuse_operation(self, operation_id: str) -> None:
        """Answers one `subscribe` over the identity's cap with an error; nothing runs."""
        cap = self.context.services.limits.max_operations
        error = GraphQLError(
            f"too many subscriptions for this certificate (at most {cap} at once)",
            extensions={"code": "BAD_USER_INPUT"},
        )
        await self.send_message(
            ErrorMessage(id=operation_id, type="error", payload=[error.formatted])
        )

    async def _watch_certificate(self) -> None:
        while not self._refused:
            await asyncio.sleep(self.recheck_seconds)
            await self._certificate_accepted()

    async def _certificate_accepted(self) -> bool:
        """Whether the socket's certificate is still accepted; if not, ends the socket."""
        if self._refused:
            return False
        try:
            self.context.services.identifier.identify(self.context.request.scope)
        except UnauthenticatedError as refusal:
            await self._refuse(refusal)
            return False
        return True

    async def _refuse(self, refusal: UnauthenticatedError) -> None:
        """Ends each running operation with UNAUTHENTICATED, then closes the socket with 4403."""
        self._refused = True
        identity = self.context.identity
        log.info("Closing a websocket of %s/%s: %s", identity.org, identity.uid, refusal)
        error = {"message": str(refusal), "extensions": {"code": refusal.code}}
        running = list(self.operations.values())
        for operation in running:
            operation.completed = True  # nothing more is sent for it, its `complete` included
        with suppress(*_GONE):
            for operation in running:
                await self.websocket.send_json(
                    {"id": operation.id, "type": "error", "payload": [error]}
                )
            await self.websocket.close(CERTIFICATE_REFUSED_CODE, CERTIFICATE_REFUSED_REASON)
        # Cancelled last: this may run inside one of these operations, and must finish first.
        # Strawberry forgets them when the socket has closed.
        for operation in running:
            if operation.task is not None:
                operation.task.cancel()
