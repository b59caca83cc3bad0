"""The Starlette application: /graphql (POST, GraphiQL on GET, websockets), health, metrics.

Requests to /graphql must carry a verified identity (client certificate over
mutual TLS, or from a trusted proxy's header): without one, HTTP gets 401 with
an UNAUTHENTICATED GraphQL error, and a websocket upgrade is refused (closed before
it is accepted, which uvicorn answers with HTTP 403).
Bodies over 1 MiB get HTTP 413 before any parsing; bodies that take over 30 s, 408.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute, request_response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from authz.identity import Identity
from domain.errors import UnauthenticatedError

from .context import Context
from .health import HealthAddress, HealthListener, probe_routes
from .schema import schema
from .services import Services
from .web import GRAPHIQL_PAGE, NO_STORE, graphiql_headers, web_routes, with_headers
from .websocket import CertificateCheckedTransportWS

MAX_BODY_BYTES = 1024 * 1024
MAX_BODY_SECONDS = 30.0
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class HealthLedgerGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view with the caller's Identity in the context.

    Websockets speak graphql-transport-ws only, and keep checking the caller's certificate
    (api.websocket); a client asking only for the legacy `graphql-ws` protocol is closed
    with 4406. Every response and websocket handshake answer says `Cache-Control: no-store`.
    """

    graphql_transport_ws_handler_class = CertificateCheckedTransportWS

    def __init__(self, services: Services) -> None:
        super().__init__(
            schema, graphql_ide="graphiql", subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL]
        )
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, with_headers(send, NO_STORE))

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL, never framed and never prefilled.

        The page would fill its editor from the URL (`?q=`, `?variables=`, `?headers=`), so a
        link could stage a mutation for one click; with any query string the browser is sent
        to the bare URL instead.
        """
        if request.url.query:
            return RedirectResponse(request.url.path, status_code=303)
        return HTMLResponse(GRAPHIQL_PAGE, headers=graphiql_headers(request))

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return Context(
            identity=request.scope["state"]["identity"], services=self.services, request=request
        )

    def decode_json(self, data: str | bytes) -> object:
        """A request body (bytes) or websocket message (text) as a JSON object.

        Only a body may also be an array: a batch, which Strawberry refuses with its own
        message. Anything else raises JSONDecodeError, which Strawberry answers with HTTP
        400 (a websocket is closed with 4400): bytes that are not UTF-8, a number too long
        to convert, nesting too deep for the decoder, or a value that is not an object.
        """
        try:
            decoded = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
        except (ValueError, RecursionError) as exc:
            raise json.JSONDecodeError(f"Not decodable: {exc.__class__.__name__}", "", 0) from exc
        batch = isinstance(data, bytes) and isinstance(decoded, list)
        if not isinstance(decoded, dict) and not batch:
            raise json.JSONDecodeError("Not a JSON object", "", 0)
        return decoded


def _unauthenticated(message: str) -> JSONResponse:
    body = {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": "UNAUTHENTICATED"}}],
    }
    return JSONResponse(body, status_code=401)


class IdentityGate:
    """Puts the verified Identity into the scope, or refuses the request."""

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], services: Services
    ) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            identity = self.services.identifier.identify(scope)
        except UnauthenticatedError as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4401, "reason": str(exc)[:120]})
            else:
                await _unauthenticated(str(exc))(scope, receive, send)
            return
        scope.setdefault("state", {})["identity"] = identity
        await self.app(scope, receive, send)


class BodyLimit:
    """Request bodies are bounded in size and in time.

    Over `limit` bytes (declared or streamed) gets HTTP 413. A body that has not
    arrived whole within `seconds` of the first read (a client trickling it in,
    slowloris-style) gets HTTP 408 and the connection is closed; the request
    head is bounded by the HTTP protocol class (authz.request_head) and idle time by
    uvicorn's keep-alive timeout.
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        limit: int,
        seconds: float = MAX_BODY_SECONDS,
    ) -> None:
        self.app = app
        self.limit = limit
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _body_refused(413, f"larger than {self.limit // 1024} KiB")(scope, receive, send)
            return
        received = 0
        deadline: float | None = None

        async def limited_receive() -> MutableMapping[str, Any]:
            nonlocal received, deadline
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.seconds
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise _BodyTooSlowError from None
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLargeError:
            await _body_refused(413, f"larger than {self.limit // 1024} KiB")(scope, receive, send)
        except _BodyTooSlowError:
            refusal = _body_refused(408, f"not sent within {self.seconds:g} s")
            refusal.headers["connection"] = "close"
            await refusal(scope, receive, send)


class _BodyTooLargeError(Exception):
    pass


class _BodyTooSlowError(Exception):
    pass


def _body_refused(status: int, why: str) -> JSONResponse:
    body = {
        "data": None,
        "errors": [
            {"message": f"The request body was {why}.", "extensions": {"code": "BAD_USER_INPUT"}}
        ],
    }
    return JSONResponse(body, status_code=status)


def create_app(services: Services, health: HealthAddress | None = None) -> Starlette:
    """The whole HTTP surface of a healthledger server over the given services.

    With `health`, the lifespan also opens the plain-HTTP probe listener there.
    """
    graphql = BodyLimit(IdentityGate(HealthLedgerGraphQL(services), services), MAX_BODY_BYTES)
    listener = HealthListener(services, health) if health else None

    async def metrics(request: Request) -> Response:
        identity: Identity = request.scope["state"]["identity"]
        channels = [channel.name for channel in services.access.channels_for(identity)]
        body = await services.metrics.render(channels, viewer=identity)
        return Response(body, media_type="text/plain; version=0.0.4", headers=NO_STORE)

    @asynccontextmanager
    async def lifespan(_: Starlette):  # type: ignore[no-untyped-def]
        try:
            if listener is not None:
                await listener.start()
            yield
        finally:
            if listener is not None:
                await listener.stop()
            await services.close()

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            *probe_routes(services),
            Route("/metrics", IdentityGate(request_response(metrics), services)),
            *web_routes(),
        ],
        lifespan=lifespan,
    )
