"""The web build beside the API: the app at / (its files, the single-page fallback), GraphiQL
at /graphql and /graphiql from the same build, and the API untouched."""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from api.web import GRAPHIQL_POLICY, WEB_DIST, web_routes
from tests.networks import NetworkFixture
from tests.web_app import WEB, web_server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NetworkFixture, str]]:
    with web_server(tmp_path_factory.mktemp("web")) as (net, server):
        yield net, server.base_url


@pytest.fixture(scope="module")
def alice(served: tuple[NetworkFixture, str]) -> Iterator[httpx.Client]:
    net, url = served
    with httpx.Client(base_url=url, verify=net.client_context("alice"), timeout=10) as client:
        yield client


def test_the_app_is_served_at_the_root_with_its_assets(alice: httpx.Client) -> None:
    page = alice.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<div id="app"></div>' in page.text
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-cache"
    scripts = re.findall(r'src="(/assets/[^"]+\.js)"', page.text)
    assert scripts, page.text
    script = alice.get(scripts[0])
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "immutable" in script.headers["cache-control"]


def test_app_paths_get_the_app_and_everything_else_stays_404(alice: httpx.Client) -> None:
    index = alice.get("/").text
    for path in ("/children", "/children/child-1/history"):
        response = alice.get(path)
        assert (response.status_code, response.text) == (200, index), path
    for path in ("/assets/missing.js", "/missing.png", "/graphql/extra", "/metrics/x"):
        assert alice.get(path).status_code == 404, path
    assert alice.post("/", json={"query": "{ me { uid } }"}).status_code == 405


def test_the_api_beside_the_app_answers_as_before(alice: httpx.Client) -> None:
    me = alice.post("/graphql", json={"query": "{ me { uid role } }"})
    assert me.json() == {"data": {"me": {"uid": "alice", "role": "PARENT"}}}
    assert alice.get("/healthz").status_code == 200
    assert alice.get("/readyz").status_code == 200


def test_graphiql_is_the_builds_own_page_at_graphql_and_graphiql(alice: httpx.Client) -> None:
    built = (WEB_DIST / "graphiql.html").read_text()
    for path in ("/graphql", "/graphiql"):
        page = alice.get(path, headers={"Accept": "text/html"})
        assert (page.status_code, page.text) == (200, built), path
        assert page.headers["content-security-policy"] == GRAPHIQL_POLICY
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
    assert '<div id="graphiql"></div>' in built
    files = re.findall(r'(?:src|href)="([^"]+)"', built)
    assert files and all(name.startswith("/") and not name.startswith("//") for name in files)
    for name in files:
        asset = alice.get(name)
        assert asset.status_code == 200, name
    # One way in, with GraphiQL's headers.
    assert alice.get("/graphiql.html").status_code == 404


def test_graphiqls_policy_names_no_other_host() -> None:
    sources = {
        source for directive in GRAPHIQL_POLICY.split(";") for source in directive.split()[1:]
    }
    assert sources == {"'self'", "'none'", "'unsafe-inline'", "data:"}
    directives = {part.split()[0]: part.split()[1:] for part in GRAPHIQL_POLICY.split("; ")}
    assert directives["script-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]


def test_graphiql_at_its_own_path_is_never_prefilled(alice: httpx.Client) -> None:
    response = alice.get(
        "/graphiql?query=mutation%20%7B%20x%20%7D", headers={"Accept": "text/html"}
    )
    assert (response.status_code, response.headers["location"]) == (303, "/graphiql")
    assert response.headers["cache-control"] == "no-store"


def test_without_a_graphiql_build_the_page_says_so_and_loads_nothing(tmp_path: Path) -> None:
    page = asyncio.run(_get(Starlette(routes=web_routes(tmp_path)), "/graphiql"))
    assert page.status_code == 404
    assert "GraphiQL is not built" in page.text
    assert not re.search(r"<(script|link)\b", page.text)
    assert page.headers["content-security-policy"] == GRAPHIQL_POLICY
    assert page.headers["cache-control"] == "no-store"


def test_a_websocket_outside_graphql_is_refused(served: tuple[NetworkFixture, str]) -> None:
    net, url = served
    context: ssl.SSLContext = net.client_context("alice")
    with pytest.raises(InvalidStatus) as refused:
        connect(url.replace("https", "wss") + "/", ssl=context, open_timeout=10).close()
    assert refused.value.response.status_code == 403


def test_without_a_build_the_app_is_not_mounted(tmp_path: Path) -> None:
    assert WEB_DIST == WEB / "dist"
    assert _paths(web_routes(tmp_path)) == ["/graphiql"]
    (tmp_path / "index.html").write_text("<!doctype html>")
    assert _paths(web_routes(tmp_path)) == ["/graphiql", ""]


async def _get(app: Starlette, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
        return await client.get(path)


def _paths(routes: list[BaseRoute]) -> list[str]:
    return [route.path if isinstance(route, Route | Mount) else repr(route) for route in routes]
