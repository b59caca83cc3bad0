"""The web app at / beside the API: its files, the single-page fallback, the API untouched."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from api.web import WEB_DIST, web_routes
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
    graphiql = alice.get("/graphql", headers={"Accept": "text/html"})
    assert graphiql.status_code == 200
    assert "graphiql" in graphiql.text.lower()
    assert '<div id="app"></div>' not in graphiql.text
    assert alice.get("/healthz").status_code == 200
    assert alice.get("/readyz").status_code == 200


def test_a_websocket_outside_graphql_is_refused(served: tuple[NetworkFixture, str]) -> None:
    net, url = served
    context: ssl.SSLContext = net.client_context("alice")
    with pytest.raises(InvalidStatus) as refused:
        connect(url.replace("https", "wss") + "/", ssl=context, open_timeout=10).close()
    assert refused.value.response.status_code == 403


def test_without_a_build_nothing_is_mounted(tmp_path: Path) -> None:
    assert WEB_DIST == WEB / "dist"
    assert web_routes(tmp_path) == []
    (tmp_path / "index.html").write_text("<!doctype html>")
    assert [route.path for route in web_routes(tmp_path)] == [""]
