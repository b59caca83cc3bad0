"""Websocket messages and variables are bounded like request bodies, before any parsing.

A `subscribe` message of 22 KiB on the wire (a 3,000,000-element list, 14 MiB
unpacked) used to stall the event loop for 4.6 s; inside a 1 MiB body, a
340,000-element list variable still cost 0.37 s to coerce.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from api.app import MAX_BODY_BYTES
from api.variable_limits import MAX_LIST_ITEMS, MAX_VALUES, variables_refusal
from authz.client_cert_protocols import MAX_MESSAGE_BYTES
from tests.api_client import WS_PROTOCOL, Api, api_server
from tests.networks import NetworkFixture, make_network

APPROVE = (
    "mutation($id: ID!, $schools: [String!]!) { approveReport(id: $id, schools: $schools) { id } }"
)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("limits") / "network")


@pytest.fixture(scope="module")
def api(net: NetworkFixture) -> Iterator[Api]:
    with api_server(net, "memory://") as running:
        yield running


def test_a_websocket_message_is_bounded_like_a_request_body() -> None:
    assert MAX_MESSAGE_BYTES == MAX_BODY_BYTES


def test_a_compressed_websocket_message_over_the_limit_unpacked_closes_the_socket(
    api: Api,
) -> None:
    huge = json.dumps(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": APPROVE, "variables": {"schools": ["a"] * 600_000}},
        }
    )
    assert len(huge) > 2 * MAX_MESSAGE_BYTES
    with ws_connect(
        api.wss_url,
        ssl=api.net.client_context("alice"),
        subprotocols=[WS_PROTOCOL],  # type: ignore[list-item]
        open_timeout=10,
        close_timeout=2,
        max_size=None,
    ) as socket:
        assert socket.protocol.extensions, "permessage-deflate is negotiated"
        socket.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(socket.recv(timeout=10))["type"] == "connection_ack"
        started = time.monotonic()
        socket.send(huge)
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert time.monotonic() - started < 2
    assert api("alice").data("{ me { uid } }") == {"me": {"uid": "alice"}}


@pytest.mark.parametrize(
    "variables",
    [
        pytest.param({"id": "r", "schools": ["school-a"] * (MAX_LIST_ITEMS + 1)}, id="long list"),
        pytest.param({"id": "r", "schools": [1] * 340_000}, id="340,000 entries in 1 MiB"),
        pytest.param(
            {"id": "r", "schools": [], "extra": [[1] * 100] * 100}, id="many values in all"
        ),
    ],
)
def test_oversized_variables_are_refused_before_coercion(
    api: Api, variables: dict[str, object]
) -> None:
    error = api("alice").error(APPROVE, variables)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


def test_the_variables_check_is_cheap_and_admits_a_full_card_patch() -> None:
    huge = {"schools": ["school-a"] * 340_000}
    started = time.process_time()
    assert variables_refusal(huge) is not None
    assert time.process_time() - started < 0.005
    patch = {
        "examinations": [{"date": "2024-01-01", "heightCm": 1, "weightKg": 1, "findings": "x"}]
        * MAX_LIST_ITEMS,
        "vaccinations": [{"vaccine": "MMR", "date": "2024-01-01", "dose": 1}] * MAX_LIST_ITEMS,
    }
    assert variables_refusal({"patch": patch}) is None
    assert variables_refusal({"x": list(range(MAX_VALUES))}) is not None
