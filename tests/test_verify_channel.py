"""`verifyChannel`: checks from where the last passing check ended, once per operation.

On a ledger: `verify_channel_since` agrees with a check from block 0 at every point of
a chain with writes, deletes and conflicts; it finds a byte changed in a block added
since (its transaction, the history or world-state row it wrote) and in the block it
starts from, and, as its docstring says, not a change further back.

Through the API, over mutual TLS on SQLite: a member's check reads only the blocks added
since this server's last passing check, thirty aliases of it in one operation run one
check, damage in a new block is named and stops writes until repaired, and `full: true`
(a check from block 0) is for administrators only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import api.chain_checks
from ledger_backends import ChannelLedger, Tip, Validation, Version, open_ledger, verify_channel
from ledger_backends.chain import ChainWriter
from ledger_backends.testing import (
    BlockField,
    HistoryValue,
    Place,
    StateValue,
    TransactionText,
    one_digit_changed,
    proposal,
    raw_store,
)
from ledger_backends.verify import verify_channel_since
from tests.api_client import Api, api_server, register, sign_and_accept, update_card
from tests.networks import NetworkFixture, make_network

CHANNEL = "medical"
VERIFY = """
query($channel: String!, $full: Boolean) {
  verifyChannel(channel: $channel, full: $full) { ok height firstBadBlock reason }
}"""


# -- on a ledger ------------------------------------------------------------------------------


def _grow(writer: ChainWriter, blocks: int) -> list[Tip]:
    """Blocks 0 to `blocks - 1`, writing, deleting and conflicting on three keys.

    Block n writes n to key k(n % 3); returns the tip after each block.
    """
    versions: dict[str, Version | None] = {}
    tips = []
    for number in range(blocks):
        key, other = f"k{number % 3}", f"k{(number + 1) % 3}"
        proposals = [
            proposal(f"write-{number}", reads={key: versions.get(key)}, writes={key: number}),
            proposal(f"stale-{number}", reads={other: (0, 9)}, writes={other: -1}),
        ]
        if number % 4 == 3:
            proposals.append(
                proposal(
                    f"delete-{number}", reads={other: versions.get(other)}, writes={other: None}
                )
            )
        for receipt, sent in zip(writer.commit(proposals), proposals, strict=True):
            if receipt.validation == Validation.VALID:
                for written, value in sent.write_set.items():
                    versions[written] = None if value is None else (number, receipt.tx_index)
        tips.append(writer.store.tip(CHANNEL))
    return tips


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[tuple[str, ChainWriter]]:
    url = f"sqlite:///{tmp_path}/ledger.db"
    opened = open_ledger(url)
    try:
        yield url, ChainWriter(opened.store, CHANNEL)
    finally:
        opened.close()


def test_a_check_from_any_earlier_tip_agrees_with_one_from_block_zero(
    ledger: tuple[str, ChainWriter],
) -> None:
    _, writer = ledger
    tips = _grow(writer, 12)
    outcomes = {
        tx.validation for b in writer.store.read_blocks(CHANNEL, 0, 12) for tx in b.transactions()
    }
    assert outcomes == {Validation.VALID, Validation.MVCC_READ_CONFLICT}
    full = verify_channel(writer.store, CHANNEL)
    assert full.ok and full.tip == tips[-1]
    for tip in tips:
        assert verify_channel_since(writer.store, CHANNEL, tip) == full


# After a check at height 8, block 8 writes 8 to k2; block 7 is where the next check starts.
NEW_BLOCK_DAMAGE: dict[str, tuple[Place, str | None, str | None]] = {
    "transaction": (TransactionText(CHANNEL, 8, 0), "write-8", "writE-8"),
    "history row": (HistoryValue(CHANNEL, "k2", 8, 0), "8", "9"),
    "world-state row": (StateValue(CHANNEL, "k2"), "8", "9"),
    "the block checked last": (BlockField(CHANNEL, 7, "data_hash"), None, None),
}


@pytest.mark.parametrize("kind", list(NEW_BLOCK_DAMAGE))
def test_a_change_since_the_earlier_tip_is_found_as_a_check_from_block_zero_finds_it(
    ledger: tuple[str, ChainWriter], kind: str
) -> None:
    url, writer = ledger
    verified = _grow(writer, 9)[7]
    place, old, new = NEW_BLOCK_DAMAGE[kind]
    with raw_store(url) as raw:
        old = old or raw.read(place)
        raw.change(place, old, new or one_digit_changed(old))
    found = verify_channel_since(writer.store, CHANNEL, verified)
    full = verify_channel(writer.store, CHANNEL)
    assert not found.ok and found.first_bad_block in (7, 8)
    assert (found.first_bad_block, found.reason) == (full.first_bad_block, full.reason)


def test_a_change_before_the_earlier_tip_is_left_to_a_check_from_block_zero(
    ledger: tuple[str, ChainWriter],
) -> None:
    url, writer = ledger
    verified = _grow(writer, 9)[7]
    with raw_store(url) as raw:
        raw.change(TransactionText(CHANNEL, 2, 0), "write-2", "write-3")
    assert verify_channel_since(writer.store, CHANNEL, verified).ok
    full = verify_channel(writer.store, CHANNEL)
    assert (full.ok, full.first_bad_block) == (False, 2)


# -- through the API --------------------------------------------------------------------------


class Checks:
    """Counts the checks ChainChecks runs, from block 0 and from an earlier tip."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = 0
        self.since = 0
        full, since = ChannelLedger.verify, api.chain_checks.verify_channel_since

        def counted_full(channel: ChannelLedger) -> Any:
            self.full += 1
            return full(channel)

        def counted_since(*args: Any) -> Any:
            self.since += 1
            return since(*args)

        monkeypatch.setattr(ChannelLedger, "verify", counted_full)
        monkeypatch.setattr(api.chain_checks, "verify_channel_since", counted_since)

    def taken(self) -> tuple[int, int]:
        counts = (self.full, self.since)
        self.full = self.since = 0
        return counts


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("verify-channel") / "network")


@pytest.fixture
def served(net: NetworkFixture, tmp_path: Path) -> Iterator[tuple[Api, str]]:
    url = f"sqlite:///{tmp_path}/ledger.db"
    with api_server(net, url) as running:
        yield running, url


def _verify(api: Api, uid: str, full: bool | None = None) -> dict[str, Any]:
    return dict(api(uid).data(VERIFY, {"channel": CHANNEL, "full": full})["verifyChannel"])


def _story(api: Api) -> str:
    """A child whose card dr-house updated once: blocks 0-3 on medical."""
    child = register(api)
    sign_and_accept(api, child)
    update_card(api, child, 1, healthGroup=3)
    return child


def test_a_member_checks_only_the_blocks_added_since_the_last_check(
    served: tuple[Api, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _ = served
    child = _story(api)
    checks = Checks(monkeypatch)
    first = _verify(api, "alice")
    assert first == {"ok": True, "height": 4, "firstBadBlock": None, "reason": None}
    assert checks.taken() == (1, 0)  # nothing passed before in this process: from block 0
    assert _verify(api, "dr-house") == first
    assert checks.taken() == (0, 1)  # the same tip: its last block is read again, no other
    update_card(api, child, 2, healthGroup=4)
    assert _verify(api, "alice")["height"] == 5
    assert checks.taken() == (0, 1)


def test_thirty_aliases_in_one_operation_run_one_check(
    served: tuple[Api, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _ = served
    child = _story(api)
    checks = Checks(monkeypatch)
    aliases = " ".join(
        f'v{i}: verifyChannel(channel: "{CHANNEL}") {{ ok height }}' for i in range(30)
    )
    assert set(map(str, api("alice").data(f"{{ {aliases} }}").values())) == {
        str({"ok": True, "height": 4})
    }
    assert checks.taken() == (1, 0)
    update_card(api, child, 2, healthGroup=4)
    assert len(api("dr-house").data(f"{{ {aliases} }}")) == 30
    assert checks.taken() == (0, 1)


def test_a_changed_block_added_since_the_last_check_is_named_and_not_built_upon(
    served: tuple[Api, str],
) -> None:
    api, url = served
    child = _story(api)
    assert _verify(api, "alice")["ok"]
    update_card(api, child, 2, healthGroup=4)  # block 4
    with raw_store(url) as raw:
        raw.change(TransactionText(CHANNEL, 4, 0), "updateMedicalCard", "updateMedicalCarD")
        verification = _verify(api, "alice")
        assert (verification["ok"], verification["firstBadBlock"]) == (False, 4)
        assert verification["reason"] == "its transactions do not match its data hash."
        refusal = api("dr-house").error(
            "mutation($c: ID!) { updateMedicalCard(childId: $c, expectedVersion: 3, "
            "patch: {healthGroup: 2}) { version } }",
            {"c": child},
        )
        assert refusal["extensions"]["code"] == "UNAVAILABLE"
        raw.change(TransactionText(CHANNEL, 4, 0), "updateMedicalCarD", "updateMedicalCard")
    assert _verify(api, "alice") == {"ok": True, "height": 5, "firstBadBlock": None, "reason": None}
    assert update_card(api, child, 3, healthGroup=2)["version"] == 4


def test_a_check_from_block_zero_is_for_administrators_and_finds_older_damage(
    served: tuple[Api, str],
) -> None:
    api, url = served
    child = _story(api)
    assert _verify(api, "alice")["ok"]
    update_card(api, child, 2, healthGroup=4)
    with raw_store(url) as raw:  # the agreement's acceptance, checked before
        raw.change(TransactionText(CHANNEL, 2, 0), "acceptAgreement", "acceptAgreemenT")
    assert _verify(api, "alice")["ok"]  # only block 4 is new: older damage is not looked for
    for uid in ("alice", "dr-house", "school-a-office"):
        assert api(uid).code(VERIFY, {"channel": CHANNEL, "full": True}) == "FORBIDDEN"
    assert (
        "administrators"
        in api("alice").error(VERIFY, {"channel": CHANNEL, "full": True})["message"]
    )
    full = _verify(api, "hospital-admin", full=True)
    assert (full["ok"], full["firstBadBlock"]) == (False, 2)
    assert _verify(api, "alice")["firstBadBlock"] == 2  # after damage, checks start at 0
