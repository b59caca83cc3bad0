"""Issue 18's marker test: a child's records are never in clear text at rest, and gone once erased.

On every backend, a gateway over the backend's ledger, with the data keys in the
ledger's own database (as a network keeps them by default) and real
key-encryption keys, plays the story for two children of different families:
alice's child with dr-house and school-a, bob's with dr-quinn and school-b.
Each child carries a marker of its own — a random string — in its full name,
its card's notes and allergies, and its report's conclusion; both schools read
their report, so access-log entries exist too.

Then the raw store is searched for the markers: the SQLite file with its -wal
and -shm files (while the ledger is open and after it is closed), `pg_dump` of
the PostgreSQL schema, every Redis key under the prefix (DUMP and a read by
type), every value a MemoryStore holds. Neither marker is found before the
erasure — it was never in clear — while the same search does find each child's
id, which keys hold in clear, and the marked child's wrapped data keys, and it
finds the marker when a gateway stores values in clear (the last test): the
search is not blind. The marker is in what is stored, sealed: decrypting every
sealed value finds it.

Each sealed value also commits to its content under a salt of its own, kept inside the
ciphertext: no value's salt is found in the raw store either, while the commitments,
which are in clear, are (so the search finds 64 hex digits where they are).

Alice then erases her child. Still no marker anywhere; every value sealed for
the child, in state, history and the blocks' write-sets on both channels,
opens to Erased, and no key the keyring can give decrypts it; its wrapped keys
are tombstones and their bytes are gone from the raw store; both chains verify;
bob's child is untouched: its values all open, and bob still reads its marker.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import secrets
import shutil
import subprocess
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import rfc8785
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from authz.access import ChannelAccess
from authz.directory import NetworkDirectory
from authz.identity import Identity
from authz.network import load_network
from chaincode.gateway import Gateway
from domain.errors import NotFoundError
from encryption.envelope import Erased, Sealer, is_sealed, sealed_child
from encryption.keks import Kek
from encryption.keyring import ChildErasedError, Keyring
from ledger_backends import Ledger, LedgerStore, Transaction, open_ledger, verify_channel
from ledger_backends.hashing import canonical_json
from ledger_backends.keystores import KeyStore, open_key_store
from ledger_backends.keystores.memory import MemoryKeyStore
from ledger_backends.memory import MemoryStore
from ledger_backends.records import JSONValue
from ledger_backends.sqlite import sqlite_path
from ledger_backends.testing import backend_params, scratch_url
from ledger_backends.testing.scratch import query_option
from ledger_backends.testing.selection import POSTGRES_URL, REDIS_URL
from tests.networks import NetworkFixture, make_network

CHANNELS = ("medical", "report")
T = TypeVar("T")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> NetworkFixture:
    return make_network(tmp_path_factory.mktemp("at-rest") / "network")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


# -- the two families ---------------------------------------------------------------------


@dataclass
class Child:
    """One family's child, with the marker planted in everything written about it."""

    parent: str
    doctor: str
    school_org: str
    school: str
    marker: str = field(default_factory=lambda: f"MARKER{secrets.token_hex(8)}")
    id: str = ""
    report: str = ""

    @property
    def name(self) -> str:
        return f"Mia {self.marker}"

    @property
    def notes(self) -> str:
        return f"Scar on the left knee; {self.marker} wears glasses."

    @property
    def allergy(self) -> str:
        return f"peanuts ({self.marker})"

    @property
    def conclusion(self) -> str:
        return f"Fit for school; {self.marker} takes an inhaler before sport."


@dataclass
class Session:
    """A gateway over the backend's ledger, its key store beside it in the same database."""

    gateway: Gateway
    ledger: Ledger
    keys: KeyStore
    keks: Mapping[str, Kek]
    people: dict[str, Identity]

    @property
    def store(self) -> LedgerStore:
        return self.ledger.store

    def fresh_keyring(self, channel: str) -> Keyring:
        """A keyring with nothing cached: what it gives, it read from the key store."""
        return Keyring(channel, [self.keks[channel]], self.keys)


@contextmanager
def session(
    net: NetworkFixture,
    url: str,
    keks: Mapping[str, Kek],
    people: dict[str, Identity],
    *,
    encrypted: bool = True,
) -> Iterator[Session]:
    """Open the ledger and its key store; `encrypted=False` gives a gateway that stores
    values in clear (the benchmark switch), to show the raw search finds what is there."""
    network = load_network(net.directory)
    ledger = open_ledger(url, batch_timeout_ms=1)
    keys = open_key_store(url, same_database_as_ledger=True)
    try:
        keyrings = {name: Keyring(name, [keks[name]], keys) for name in CHANNELS}
        gateway = Gateway(
            {name: ledger.channel(name) for name in CHANNELS},
            ChannelAccess(network),
            NetworkDirectory(network),
            keyrings=keyrings if encrypted else None,
        )
        yield Session(gateway, ledger, keys, keks, people)
    finally:
        keys.close()
        ledger.close()


async def play(s: Session, child: Child) -> None:
    """The whole story for one child; fills in its id and its report's."""
    gw, people = s.gateway, s.people
    parent, doctor, school = people[child.parent], people[child.doctor], people[child.school]
    registered = await gw.submit(
        parent, "medical", "registerChild", {"fullName": child.name, "birthDate": "2019-06-01"}
    )
    child.id = registered["id"]
    agreement = await gw.submit(
        parent, "medical", "signAgreement", {"childId": child.id, "doctorUid": child.doctor}
    )
    await gw.submit(doctor, "medical", "acceptAgreement", {"id": agreement["id"]})
    await gw.submit(
        doctor,
        "medical",
        "updateMedicalCard",
        {
            "childId": child.id,
            "expectedVersion": 1,
            "patch": {"notes": child.notes, "allergies": [child.allergy]},
        },
    )
    admission = await gw.create_admission_request(parent, child.id, child.school_org)
    await gw.submit(school, "report", "acceptAdmissionRequest", {"id": admission["id"]})
    request = await gw.create_report_request(school, admission["id"])
    report = await gw.create_report(doctor, request["id"], child.conclusion)
    child.report = report["id"]
    await gw.submit(
        parent, "report", "approveReport", {"id": report["id"], "schools": [child.school_org]}
    )
    read = await gw.evaluate(school, "report", "readReport", {"id": report["id"]})
    assert read["content"]["conclusion"] == child.conclusion
    assert read["content"]["allergies"] == [child.allergy]
    log = await gw.list_access_log(parent, child.id)
    assert {entry["item"]["readerUid"] for entry in log["entries"]} >= {child.school}


# -- the raw store ------------------------------------------------------------------------


def _flatten(value: object) -> Iterator[bytes]:
    """Every text and byte string inside `value` (as UTF-8), dataclasses and containers
    walked; a type it does not know fails the test rather than being skipped."""
    if isinstance(value, bytes | bytearray | memoryview):
        yield bytes(value)
    elif isinstance(value, str):
        yield value.encode("utf-8")
    elif value is None or isinstance(value, bool | int | float):
        yield str(value).encode("ascii")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(key)
            yield from _flatten(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _flatten(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for part in dataclasses.fields(value):
            yield from _flatten(getattr(value, part.name))
    else:
        raise TypeError(f"The raw search does not know how to read a {type(value).__name__}.")


# A wrapped key as each backend keeps it: raw bytes (SQLite's blob, the memory store),
# hex (pg_dump's bytea) or base64 (the JSON of the Redis key store).
_KEY_FORMS: tuple[Callable[[bytes], bytes], ...] = (
    bytes,
    lambda key: key.hex().encode("ascii"),
    base64.b64encode,
)


@dataclass(frozen=True)
class RawStore:
    """The bytes of a backend's storage, by where they were found."""

    parts: dict[str, bytes]

    def hits(self, needle: bytes) -> int:
        return sum(data.count(needle) for data in self.parts.values())

    def hits_by_part(self, needle: bytes) -> dict[str, int]:
        return {name: data.count(needle) for name, data in self.parts.items()}

    def marker_hits(self, *children: Child) -> int:
        # The markers are ASCII, so their JSON-escaped form is the same bytes.
        return sum(self.hits(child.marker.encode("ascii")) for child in children)

    def key_hits(self, wrapped: list[bytes]) -> int:
        """Occurrences of wrapped keys as raw bytes, hex (pg_dump's bytea) or base64 (Redis)."""
        return sum(self.key_hits_in(part, wrapped) for part in self.parts)

    def key_hits_in(self, part: str, wrapped: list[bytes]) -> int:
        data = self.parts[part]
        forms = (form(key) for key in wrapped for form in _KEY_FORMS)
        return sum(data.count(needle) for needle in forms)


def raw_store(backend: str, url: str, s: Session | None) -> RawStore:
    """What the backend holds, read beneath the ledger: `s` is needed for `memory` only."""
    if backend == "memory":
        assert s is not None
        assert isinstance(s.store, MemoryStore) and isinstance(s.keys, MemoryKeyStore)
        ledger = b"\0".join(_flatten(s.store._channels))
        keys = b"\0".join(_flatten(s.keys._keys))
        return RawStore({"ledger": ledger, "keys": keys})
    if backend == "sqlite":
        path = sqlite_path(url)
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")]
        found = {file.name: file.read_bytes() for file in files if file.exists()}
        assert path.name in found, f"no database file at {path}"
        return RawStore(found)
    if backend == "postgresql":
        return RawStore({"pg_dump": _pg_dump(query_option(url, "schema"))})
    if backend == "redis":
        return _redis_dump(query_option(url, "prefix"))
    raise AssertionError(f"no raw search for {backend}")


def _pg_dump(schema: str) -> bytes:
    program = shutil.which("pg_dump")
    if program is None:
        pytest.fail(
            "pg_dump is not on PATH: the PostgreSQL marker search needs it "
            "(apt-get install postgresql-client, the same major version as the server)."
        )
    done = subprocess.run(
        [program, "--dbname", POSTGRES_URL, "--schema", schema, "--no-owner"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"CREATE TABLE" in done.stdout, "pg_dump found no tables in the scratch schema"
    return done.stdout


def _redis_dump(prefix: str) -> RawStore:
    """Every key under the prefix: its name, its DUMP (which may be compressed) and its
    content read by type (which is not)."""
    names: list[bytes] = []
    dumps: list[bytes] = []
    typed: list[bytes] = []
    client: Any = redis.Redis.from_url(REDIS_URL, socket_timeout=30)
    with client:
        for key in sorted(client.scan_iter(match=f"{prefix}:*", count=1000)):
            names.append(key)
            dumped = client.dump(key)
            assert dumped is not None, key
            dumps.append(dumped)
            kind = client.type(key)
            if kind == b"string":
                content: object = client.get(key)
            elif kind == b"hash":
                content = client.hgetall(key)
            elif kind == b"list":
                content = client.lrange(key, 0, -1)
            elif kind == b"set":
                content = client.smembers(key)
            elif kind == b"zset":
                content = client.zrange(key, 0, -1, withscores=True)
            elif kind == b"stream":
                content = client.xrange(key, "-", "+")
            else:
                raise AssertionError(f"key {key!r} has a type the search does not read: {kind!r}")
            typed.extend(_flatten(content))
    assert names, f"no Redis keys under {prefix}:"
    return RawStore(
        {"key names": b"\0".join(names), "DUMP": b"\0".join(dumps), "typed": b"\0".join(typed)}
    )


# -- stored values, opened ----------------------------------------------------------------


@dataclass(frozen=True)
class StoredValue:
    channel: str
    where: str  # state, history or block
    key: str
    tx_id: str | None
    value: JSONValue


def sealed_values(store: LedgerStore, channel: str) -> list[StoredValue]:
    """Every sealed value the channel stores: in state, in history, in blocks' write-sets."""
    found = [
        StoredValue(channel, "state", record.key, None, record.json())
        for record in store.scan_state(channel)
    ]
    found += [
        StoredValue(channel, "history", entry.key, entry.tx_id, entry.json())
        for entry in store.scan_history(channel)
        if entry.value is not None
    ]
    height = store.tip(channel).height
    for block in store.read_blocks(channel, 0, height):
        for index, text in enumerate(block.tx_texts):
            tx = Transaction.from_text(text, block.number, index)
            found += [
                StoredValue(channel, "block", key, tx.tx_id, value)
                for key, value in tx.write_set.items()
            ]
    return [value for value in found if is_sealed(value.value)]


def raw_decrypt(aead: AESGCM, stored: StoredValue) -> bytes:
    """AES-256-GCM decryption of a sealed value, done here as the envelope describes it
    (not through encryption.envelope): InvalidTag unless `aead` is the key that sealed it."""
    inner = stored.value["sealed"]
    bound = ["healthledger value", stored.channel, stored.key, inner["child"], inner["tx"]]
    if "commitment" in inner:  # an envelope sealed before commitments binds none
        bound.append(inner["commitment"])
    return aead.decrypt(
        base64.b64decode(inner["nonce"]),
        base64.b64decode(inner["data"]),
        canonical_json(bound).encode("utf-8"),
    )


def raw_opening(aead: AESGCM, stored: StoredValue) -> tuple[JSONValue, str]:
    """The value and the salt a sealed value holds, decrypted here; its commitment is
    checked with hashlib and rfc8785 to be SHA-256(salt ‖ RFC 8785 text of the value)."""
    content = json.loads(raw_decrypt(aead, stored))
    assert set(content) == {"salt", "value"}, stored
    salt, value = content["salt"], content["value"]
    committed = hashlib.sha256(bytes.fromhex(salt) + rfc8785.dumps(value)).hexdigest()
    assert committed == stored.value["sealed"]["commitment"], stored
    return value, salt


def by_child(values: list[StoredValue]) -> dict[str, list[StoredValue]]:
    grouped: dict[str, list[StoredValue]] = {}
    for value in values:
        grouped.setdefault(sealed_child(value.value), []).append(value)
    return grouped


def opened_with_marker(s: Session, channel: str, child: Child) -> int:
    """How many of the child's sealed values on `channel` open (through the Sealer, and
    by raw decryption) to a plaintext holding its marker; every one of them must open."""
    keyring = s.fresh_keyring(channel)
    aead = keyring.opening_key(child.id)
    assert aead is not None, f"{child.id} has no key on {channel}"
    sealer = Sealer(keyring, "")
    values = by_child(sealed_values(s.store, channel)).get(child.id, [])
    assert values, f"nothing sealed for {child.id} on {channel}"
    with_marker = 0
    for stored in values:
        opened = sealer.open(stored.key, stored.value, tx_id=stored.tx_id)
        assert not isinstance(opened, Erased), stored
        assert raw_opening(aead, stored)[0] == opened
        with_marker += child.marker.encode("ascii") in raw_decrypt(aead, stored)
    return with_marker


def committed_values(s: Session, child: Child) -> tuple[set[str], set[str]]:
    """The salts and the commitments of every value sealed for the child, on both channels."""
    salts: set[str] = set()
    commitments: set[str] = set()
    for channel in CHANNELS:
        aead = s.fresh_keyring(channel).opening_key(child.id)
        assert aead is not None, f"{child.id} has no key on {channel}"
        for stored in by_child(sealed_values(s.store, channel)).get(child.id, []):
            salts.add(raw_opening(aead, stored)[1])
            commitments.add(stored.value["sealed"]["commitment"])
    return salts, commitments


# -- the test ---------------------------------------------------------------------------


@dataclass
class Observed:
    """Hit counts for the report of the run (printed; see -s)."""

    lines: list[str] = field(default_factory=list)

    def note(self, when: str, raw: RawStore, marked: Child, control: Child) -> None:
        self.lines.append(
            f"{when}: markers {raw.marker_hits(marked, control)} "
            f"(marked {raw.hits_by_part(marked.marker.encode())}, "
            f"control {raw.hits_by_part(control.marker.encode())}); "
            f"marked child id {raw.hits_by_part(marked.id.encode())}, "
            f"control child id {raw.hits(control.id.encode())}"
        )


def check_never_in_clear(
    raw: RawStore, marked: Child, control: Child, observed: Observed, when: str
) -> None:
    observed.note(when, raw, marked, control)
    assert raw.marker_hits(marked) == 0, (when, raw.hits_by_part(marked.marker.encode()))
    assert raw.marker_hits(control) == 0, (when, raw.hits_by_part(control.marker.encode()))
    # Not blind: the children's ids are in the keys, in clear, and the search finds them.
    assert raw.hits(marked.id.encode("ascii")) > 0, when
    assert raw.hits(control.id.encode("ascii")) > 0, when


def wrapped_keys(keys: KeyStore, child: Child) -> list[bytes]:
    wrapped = []
    for channel in CHANNELS:
        stored = keys.get(channel, child.id)
        assert stored is not None and stored.wrapped is not None, (channel, child.id)
        wrapped.append(stored.wrapped)
    return wrapped


def before_erasure(
    backend: str, url: str, s: Session, marked: Child, control: Child, observed: Observed
) -> list[bytes]:
    """The checks on the story's store; returns the marked child's wrapped keys."""
    for channel in CHANNELS:
        for child in (marked, control):
            # The markers were stored, sealed: decryption finds them on both channels.
            assert opened_with_marker(s, channel, child) > 0, (channel, child.id)
        verification = verify_channel(s.store, channel)
        assert verification.ok, verification.reason
    wrapped = wrapped_keys(s.keys, marked)
    salts, commitments = committed_values(s, marked)
    raw = raw_store(backend, url, s)
    check_never_in_clear(raw, marked, control, observed, "before erasure, open")
    salt_hits = sum(raw.hits(salt.encode("ascii")) for salt in salts)
    missing = [c for c in commitments if raw.hits(c.encode("ascii")) == 0]
    observed.lines.append(
        f"before erasure, open: salts of the marked child's {len(salts)} sealed values "
        f"{salt_hits}, their commitments not found {len(missing)}"
    )
    assert salts and salt_hits == 0, "a value's salt is in clear at rest"
    # Not blind to 64 hex digits: each commitment, in clear, is found.
    assert not missing, missing[:3]
    found = raw.key_hits(wrapped)
    observed.lines.append(f"before erasure, open: marked child's wrapped keys {found}")
    assert found >= len(wrapped), "the wrapped keys are not in the raw store: is it blind?"
    return wrapped


def erase(s: Session, marked: Child, control: Child) -> str:
    """Alice erases her child, then reads both families' records; returns the erasure date."""
    gw, people = s.gateway, s.people
    alice, bob = people[marked.parent], people[control.parent]

    async def act() -> str:
        receipt = await gw.erase_child(alice, marked.id, marked.name)
        told = f"This child's records were erased on {receipt['erasedAt'][:10]}."
        reads = [
            ("medical", "readChild", {"childId": marked.id}),
            ("medical", "readCard", {"childId": marked.id}),
            ("medical", "cardHistory", {"childId": marked.id}),
            ("report", "readReport", {"id": marked.report}),
        ]
        for channel, function, args in reads:
            with pytest.raises(NotFoundError) as refused:
                await gw.evaluate(alice, channel, function, args)
            assert str(refused.value) == told, (function, str(refused.value))
        child = await gw.evaluate(bob, "medical", "readChild", {"childId": control.id})
        assert child["fullName"] == control.name
        card = await gw.evaluate(bob, "medical", "readCard", {"childId": control.id})
        assert (card["notes"], card["allergies"]) == (control.notes, [control.allergy])
        report = await gw.evaluate(bob, "report", "readReport", {"id": control.report})
        assert report["content"]["conclusion"] == control.conclusion
        await gw.settle()
        return str(receipt["erasedAt"])

    return run(act())


def after_erasure(
    backend: str,
    url: str,
    s: Session,
    marked: Child,
    control: Child,
    wrapped: list[bytes],
    erased_at: str,
    observed: Observed,
) -> None:
    counts: list[str] = []
    for channel in CHANNELS:
        keyring = s.fresh_keyring(channel)
        stored_key = s.keys.get(channel, marked.id)
        assert stored_key is not None and stored_key.destroyed, (channel, stored_key)
        assert stored_key.erased_at == erased_at
        assert keyring.opening_key(marked.id) is None
        with pytest.raises(ChildErasedError):
            keyring.sealing_key(marked.id)
        grouped = by_child(sealed_values(s.store, channel))
        # Every key the keyring can still give: the live keys of the other children.
        live = {
            child: aead for child in grouped if (aead := keyring.opening_key(child)) is not None
        }
        assert set(live) == set(grouped) - {marked.id}, (channel, sorted(grouped))
        erased_values = grouped.get(marked.id, [])
        assert erased_values, f"nothing sealed for the erased child on {channel}"
        sealer = Sealer(keyring, "")
        for stored in erased_values:
            assert sealer.open(stored.key, stored.value, tx_id=stored.tx_id) == Erased(marked.id)
            for aead in live.values():
                with pytest.raises(InvalidTag):
                    raw_decrypt(aead, stored)
        # The other child is untouched: all its values open, its marker inside.
        assert opened_with_marker(s, channel, control) > 0, (channel, control.id)
        verification = verify_channel(s.store, channel)
        assert verification.ok, verification.reason
        counts.append(f"{channel} {len(erased_values)}")
    observed.lines.append(f"values sealed for the erased child, now Erased: {', '.join(counts)}")
    control_key = s.keys.get("medical", control.id)
    assert control_key is not None and not control_key.destroyed

    raw = raw_store(backend, url, s)
    check_never_in_clear(raw, marked, control, observed, "after erasure, open")
    found = raw.key_hits(wrapped)
    observed.lines.append(f"after erasure, open: marked child's wrapped keys {found}")
    # On SQLite too, with the ledger open: secure_delete and the checkpoint after destroy.
    assert found == 0, {part: raw.key_hits_in(part, wrapped) for part in raw.parts}


@pytest.mark.parametrize("backend", backend_params())
def test_a_marker_is_never_in_clear_at_rest_and_erasure_destroys_the_child(
    backend: str, net: NetworkFixture, tmp_path: Path
) -> None:
    people = net.identities()
    keks = {channel: Kek.generate() for channel in CHANNELS}
    marked = Child("alice", "dr-house", "school-a", "school-a-office")
    control = Child("bob", "dr-quinn", "school-b", "school-b-office")
    observed = Observed()
    with scratch_url(backend, tmp_path) as url:
        if backend == "memory":  # nothing to close and reopen: one session throughout
            with session(net, url, keks, people) as s:
                run(play(s, marked))
                run(play(s, control))
                wrapped = before_erasure(backend, url, s, marked, control, observed)
                erased_at = erase(s, marked, control)
                after_erasure(backend, url, s, marked, control, wrapped, erased_at, observed)
        else:
            with session(net, url, keks, people) as s:
                run(play(s, marked))
                run(play(s, control))
                wrapped = before_erasure(backend, url, s, marked, control, observed)
            closed = raw_store(backend, url, None)
            check_never_in_clear(closed, marked, control, observed, "before erasure, closed")
            with session(net, url, keks, people) as s:
                erased_at = erase(s, marked, control)
                after_erasure(backend, url, s, marked, control, wrapped, erased_at, observed)
            closed = raw_store(backend, url, None)
            check_never_in_clear(closed, marked, control, observed, "after erasure, closed")
            found = closed.key_hits(wrapped)
            observed.lines.append(f"after erasure, closed: marked child's wrapped keys {found}")
            assert found == 0, closed.parts.keys()
    print(f"\n[{backend}]", *observed.lines, sep="\n  ")


@pytest.mark.parametrize("backend", backend_params())
def test_the_same_search_finds_a_marker_stored_in_clear(
    backend: str, net: NetworkFixture, tmp_path: Path
) -> None:
    """The raw search is not blind to content: with values in clear (a gateway without
    keyrings, the benchmark switch) it finds the marker in every part that holds values."""
    people = net.identities()
    keks = {channel: Kek.generate() for channel in CHANNELS}
    child = Child("alice", "dr-house", "school-a", "school-a-office")
    with scratch_url(backend, tmp_path) as url:
        with session(net, url, keks, people, encrypted=False) as s:
            run(play(s, child))
            raw = raw_store(backend, url, s)
        found = raw.hits_by_part(child.marker.encode("ascii"))
        print(f"\n[{backend}] in clear, open: marker {found}")
        expected = {
            "memory": ["ledger"],
            "sqlite": [],  # in the file or its -wal, whichever holds the pages now
            "postgresql": ["pg_dump"],
            "redis": ["typed"],  # DUMP may compress
        }[backend]
        assert raw.marker_hits(child) > 0
        assert all(found[part] > 0 for part in expected), found
        if backend != "memory":
            closed = raw_store(backend, url, None)
            found = closed.hits_by_part(child.marker.encode("ascii"))
            print(f"[{backend}] in clear, closed: marker {found}")
            assert closed.marker_hits(child) > 0
