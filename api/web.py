"""The web build (`web/dist`, made by `npm run build`): the app at `/` and GraphiQL, with
the pages' protective headers.

The app is mounted only when `web/dist/index.html` exists. A GET for a path that is no file
and has no file extension gets `index.html`, so the app's own paths survive a reload;
missing assets and the API's own paths stay 404. The files are not identity-gated: they
hold no records (every record comes from /graphql, which is gated), and on the server's own
mutual TLS the handshake has already required a client certificate.

GraphiQL is the build's second page (`graphiql.html`, bundled from npm packages), served at
GET /graphql to browsers and at /graphiql, under the app's Content-Security-Policy with inline
styles and data: fonts allowed for its editor: every script, stylesheet, font and connection
comes from this origin. Responses that carry records are never stored by a cache.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

# The build next to the sources, unless installed elsewhere (the container image sets it).
WEB_DIST = Path(
    os.environ.get("HEALTHLEDGER_WEB_DIST")
    or Path(__file__).resolve().parent.parent / "web" / "dist"
)
GRAPHIQL_FILE = "graphiql.html"
API_PATHS = frozenset({"graphql", "graphiql", "healthz", "readyz", "metrics", "checkpoint"})
# Same origin only; 'self' covers the wss:// subscriptions to /graphql.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# The app's policy, but GraphiQL's editor (Monaco) lays out and colours its text with inline
# styles, and GraphiQL's stylesheet carries its fonts as data: URLs.
GRAPHIQL_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "font-src 'self' data:; img-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
GRAPHIQL_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": GRAPHIQL_POLICY,
    "X-Frame-Options": "DENY",
}
GRAPHIQL_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="UTF-8"><title>GraphiQL is not built</title></head>
<body><h1>GraphiQL is not built</h1>
<p>This server has no web build, which is where GraphiQL comes from. Build it with
<code>make web/dist/index.html</code> (or <code>npm ci &amp;&amp; npm run build</code> in
<code>web/</code>), or send GraphQL requests by POST to <code>/graphql</code>.</p>
</body></html>
"""
# For responses that carry records: no browser or proxy cache keeps a copy.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class SinglePageApp(StaticFiles):
    """Static files with the single-page fallback to index.html."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await WebSocketClose()(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def get_response(self, path: str, scope: Scope) -> Response:
        if PurePosixPath(path) == PurePosixPath(GRAPHIQL_FILE):
            # GraphiQL's page has one way in, with its own headers: graphiql_page.
            raise HTTPException(404)
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or not _app_path(path):
                raise
            path = "index.html"
            response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        # Vite names assets by content hash; index.html must be re-checked to find new ones.
        immutable = PurePosixPath(path).parts[:1] == ("assets",)
        response.headers["Cache-Control"] = (
            "public, max-age=31536000, immutable" if immutable else "no-cache"
        )
        return response


def _app_path(path: str) -> bool:
    """A client-side route of the app: no extension, not under an API path."""
    parts = PurePosixPath(path).parts
    return not PurePosixPath(path).suffix and not (parts and parts[0] in API_PATHS)


def web_routes(dist: Path = WEB_DIST) -> list[BaseRoute]:
    """GraphiQL at /graphiql, then the app's mount (only when the app is built), to come
    after every API route."""

    async def graphiql(request: Request) -> Response:
        return graphiql_page(request, dist)

    routes: list[BaseRoute] = [Route("/graphiql", graphiql, methods=["GET"], name="graphiql")]
    if (dist / "index.html").is_file():
        routes.append(Mount("/", app=SinglePageApp(directory=dist, html=True), name="web"))
    return routes


def graphiql_page(request: Request, dist: Path = WEB_DIST) -> Response:
    """GraphiQL (`graphiql.html` of the web build), never framed, never prefilled, never stored.

    Its editor would not read the URL, but a query string is still never honoured: the browser
    is sent to the bare path (303), so no link can stage an operation for one click. Without
    the web build the answer is a 404 page saying so; nothing is fetched from elsewhere.
    """
    if request.url.query:
        return RedirectResponse(request.url.path, status_code=303, headers=NO_STORE)
    headers = {**GRAPHIQL_HEADERS, **NO_STORE}
    try:
        page = (dist / GRAPHIQL_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return HTMLResponse(GRAPHIQL_NOT_BUILT, status_code=404, headers=headers)
    return HTMLResponse(page, headers=headers)


def with_headers(send: Send, headers: Mapping[str, str]) -> Send:
    """`send`, setting `headers` on every HTTP response and on a websocket's handshake answer."""
    raw = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]
    names = {name for name, _ in raw}

    async def send_with_headers(message: Message) -> None:
        if message["type"] in ("http.response.start", "websocket.accept"):
            kept = [
                header for header in message.get("headers", []) if header[0].lower() not in names
            ]
            message = {**message, "headers": [*kept, *raw]}
        await send(message)

    return send_with_headers
