"""The Starlette application: /graphql (POST, GraphiQL on GET, websockets), health, metrics,
each channel's signed checkpoint (/checkpoint/CHANNEL), and the FHIR export (/fhir).

Requests to /graphql must carry a verified identity (client certificate over
mutual TLS, or from a trusted proxy's header), as must those to /metrics,
/checkpoint and /fhir: without one, HTTP gets 401 with
an UNAUTHENTICATED GraphQL error (under /fhir, an OperationOutcome), and a websocket
upgrade is refused (closed before it is accepted, which uvicorn answers with HTTP 403).
Bodies over 1 MiB get HTTP 413 before any parsing; bodies that take over 30 s, 408.
Every HTTP answer of /graphql, refusals included, takes the media type and status that
api.graphql_over_http gives it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException, StarletteRequestAdapter
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute, request_response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.base import BaseRequestProtocol
from strawberry.http.types import QueryParams
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult

from authz.identity import Identity
from domain.errors import RefusalError, UnauthenticatedError

from .checkpoint_access import (
    CHECKPOINT_PATH,
    LOG_KEY_PATH,
    checkpoint_endpoint,
    log_key_endpoint,
)
from .context import Context
from .fhir_endpoints import FhirEndpoints, unauthenticated
from .graphql_over_http import (
    APPLICATION_JSON,
    RequestRefusedError,
    answer_media_type,
    check_media_types,
    graphql_answer,
    refusal_answer,
    without_empty_parameters,
)
from .health import HealthAddress, HealthListener, probe_routes
from .persisted_operations import REFUSAL_STATUS, PersistedOperations
from .schema import schema
from .services import Services
from .web import NO_STORE, graphiql_page, web_routes, with_headers
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
    Which document a request runs, by hash or text, is `persisted_operations`' to say.
    """

    graphql_transport_ws_handler_class = CertificateCheckedTransportWS

    def __init__(self, services: Services, persisted_operations: PersistedOperations) -> None:
        super().__init__(
            schema, graphql_ide="graphiql", subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL]
        )
        self.services = services
        self.persisted_operations = persisted_operations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Websockets as Strawberry serves them; HTTP as api.graphql_over_http says, where
        Strawberry would answer its refusals in plain text."""
        send = with_headers(send, NO_STORE)
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            if not self.should_render_graphql_ide(StarletteRequestAdapter(request)):
                check_media_types(request.method, request.headers)
            response = await self.run(request)
        except HTTPException as refusal:
            response = refusal_answer(refusal, request.headers.get("accept")).response()
        await response(scope, receive, send)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        """Strawberry's, knowing the media type its GraphQL response will take."""
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = answer_media_type(request.headers.get("accept"))
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        return graphql_answer(response_data, sub_response.media_type or APPLICATION_JSON).response()

    def parse_query_params(self, params: QueryParams) -> dict[str, Any]:
        return super().parse_query_params(without_empty_parameters(params))

    def should_render_graphql_ide(self, request: BaseRequestProtocol) -> bool:
        """Not for a GET naming a persisted operation by its hash, which has no `query`."""
        return super().should_render_graphql_ide(request) and (
            "extensions" not in request.query_params
        )

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, on the document api.persisted_operations resolves for the request.

        Resolved before the schema's limits and validation run, which apply to it as to
        any text; a refusal is answered with its own code and status.
        """
        try:
            resolved = self.persisted_operations.resolve(
                request_data.query, request_data.extensions
            )
        except RefusalError as refusal:
            raise RequestRefusedError(
                REFUSAL_STATUS[refusal.code], str(refusal), refusal.code
            ) from None
        request_data.query = resolved.query
        result = await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )
        self.persisted_operations.remember(resolved, result)
        return result

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from the web build, for a browser's GET (api.web.graphiql_page)."""
        return graphiql_page(request)

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


def _refusal(scope: Scope, status: int, message: str, code: str) -> Response:
    """A refusal made before the GraphQL view, in the media type the request negotiates."""
    refused = RequestRefusedError(status, message, code)
    return refusal_answer(refused, Headers(scope=scope).get("accept")).response()


def _unauthenticated(scope: Scope, refusal: UnauthenticatedError) -> Response:
    return _refusal(scope, 401, str(refusal), "UNAUTHENTICATED")


class IdentityGate:
    """Puts the verified Identity into the scope, or refuses the request: an HTTP request
    with what `refuse` answers (by default a GraphQL error, 401 UNAUTHENTICATED)."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        services: Services,
        refuse: Callable[[Scope, UnauthenticatedError], Response] = _unauthenticated,
    ) -> None:
        self.app = app
        self.services = services
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            identity = self.services.identifier.identify(scope)
        except UnauthenticatedError as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4401, "reason": str(exc)[:120]})
            else:
                await self.refuse(scope, exc)(scope, receive, send)
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
            too_large = _body_refused(scope, 413, f"larger than {self.limit // 1024} KiB")
            await too_large(scope, receive, send)
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
            too_large = _body_refused(scope, 413, f"larger than {self.limit // 1024} KiB")
            await too_large(scope, receive, send)
        except _BodyTooSlowError:
            refusal = _body_refused(scope, 408, f"not sent within {self.seconds:g} s")
            refusal.headers["connection"] = "close"
            await refusal(scope, receive, send)


class _BodyTooLargeError(Exception):
    pass


class _BodyTooSlowError(Exception):
    pass


def _body_refused(scope: Scope, status: int, why: str) -> Response:
    return _refusal(scope, status, f"The request body was {why}.", "BAD_USER_INPUT")


def create_app(
    services: Services,
    health: HealthAddress | None = None,
    persisted_operations: PersistedOperations | None = None,
) -> Starlette:
    """The whole HTTP surface of a healthledger server over the given services.

    With `health`, the lifespan also opens the plain-HTTP probe listener there.
    `persisted_operations` are the operations registered at start and the mode (default:
    automatic persisted queries, none registered).
    """
    view = HealthLedgerGraphQL(services, persisted_operations or PersistedOperations())
    graphql = BodyLimit(IdentityGate(view, services), MAX_BODY_BYTES)
    fhir = IdentityGate(FhirEndpoints(services), services, refuse=unauthenticated)
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
            services.consent_sweep.start()
            yield
        finally:
            if listener is not None:
                await listener.stop()
            await services.close()

    return Starlette(
        routes=[
            # Every method reaches the view, which answers the others 405 as a GraphQL response.
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            *probe_routes(services),
            Route("/metrics", IdentityGate(request_response(metrics), services)),
            Route(
                CHECKPOINT_PATH,
                IdentityGate(request_response(checkpoint_endpoint(services)), services),
                methods=["GET"],
            ),
            Route(
                LOG_KEY_PATH,
                IdentityGate(request_response(log_key_endpoint(services)), services),
                methods=["GET"],
            ),
            # Every path and method under /fhir reaches the endpoints, which answer FHIR.
            Route("/fhir", fhir),
            Route("/fhir/{path:path}", fhir),
            *web_routes(),
        ],
        lifespan=lifespan,
    )
