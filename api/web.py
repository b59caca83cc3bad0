"""The web app (`web/dist`, built by `npm run build`) at `/`, beside the API.

Mounted only when `web/dist/index.html` exists. A GET for a path that is no file
and has no file extension gets `index.html`, so the app's own paths survive a
reload; missing assets and the API's own paths stay 404. The files are not
identity-gated: they hold no records (every record comes from /graphql, which
is gated), and on the server's own mutual TLS the handshake has already
required a client certificate.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketClose

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
