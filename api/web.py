"""The web app (`web/dist`, built by `npm run build`) at `/`, and the pages' protective headers.

Mounted only when `web/dist/index.html` exists. A GET for a path that is no file
and has no file extension gets `index.html`, so the app's own paths survive a
reload; missing assets and the API's own paths stay 404. The files are not
identity-gated: they hold no records (every record comes from /graphql, which
is gated), and on the server's own mutual TLS the handshake has already
required a client certificate.

GraphiQL (Strawberry's page at GET /graphql) gets the same framing and sniffing
protection, with a policy that allows exactly the CDN files and inline blocks of
that page; responses that carry records are never stored by a cache.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose
from strawberry.http.ides import get_graphql_ide_html

# The build next to the sources, unless installed elsewhere (the container image sets it).
WEB_DIST = Path(
    os.environ.get("HEALTHLEDGER_WEB_DIST")
    or Path(__file__).resolve().parent.parent / "web" / "dist"
)
API_PATHS = frozenset({"graphql", "healthz", "readyz", "metrics"})
# Same origin only; 'self' covers the app's wss:// subscriptions to /graphql.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# For responses that carry records: no browser or proxy cache keeps a copy.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# A Host header fit to name this origin in a policy (no spaces, semicolons or quotes).
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


class SinglePageApp(StaticFiles):
    """Static files with the single-page fallback to index.html."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await WebSocketClose()(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def get_response(self, path: str, scope: Scope) -> Response:
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
    """The app's mount, to come after every API route; none when the app is not built."""
    if not (dist / "index.html").is_file():
        return []
    return [Mount("/", app=SinglePageApp(directory=dist, html=True), name="web")]


class _PageResources(HTMLParser):
    """The external scripts and stylesheets of a page, and its inline script and style blocks."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.script_urls: list[str] = []
        self.style_urls: list[str] = []
        self.inline: dict[str, list[str]] = {"script": [], "style": []}
        self._open: str | None = None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and named.get("src"):
            self.script_urls.append(named["src"] or "")
        elif tag == "script" or tag == "style":
            self._open = tag
            self.inline[tag].append("")
        elif tag == "link" and named.get("rel") == "stylesheet" and named.get("href"):
            self.style_urls.append(named["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.inline[self._open][-1] += data


def _sha256_source(block: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"


def _graphiql_policy(page: str) -> str:
    """A CSP allowing exactly `page`'s external files (by full URL) and inline blocks (by hash)."""
    found = _PageResources(page)
    scripts = [*found.script_urls, *map(_sha256_source, found.inline["script"])]
    styles = [*found.style_urls, *map(_sha256_source, found.inline["style"])]
    return (
        f"default-src 'none'; script-src {' '.join(scripts)}; style-src {' '.join(styles)}; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'none'"
    )


GRAPHIQL_PAGE = get_graphql_ide_html("graphiql")
GRAPHIQL_POLICY = _graphiql_policy(GRAPHIQL_PAGE)


def graphiql_headers(request: Request) -> dict[str, str]:
    """Headers for the GraphiQL page: never framed, sniffed or sent as a referrer.

    Its subscriptions connect by wss:// to the host the page came from; that host is named
    beside 'self', which older browsers do not take to cover websockets.
    """
    policy = GRAPHIQL_POLICY
    host = request.headers.get("host", "")
    if _HOST.fullmatch(host):
        policy = policy.replace("connect-src 'self'", f"connect-src 'self' wss://{host}")
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


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
