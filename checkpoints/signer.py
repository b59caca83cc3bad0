"""Signed checkpoints: a channel's tree head as a C2SP signed note.

The note (C2SP tlog-checkpoint in a C2SP signed-note):

    healthledger/NETWORK-ID/CHANNEL
    TREE_SIZE
    BASE64(ROOT)

    — healthledger/NETWORK-ID/CHANNEL BASE64(KEY ID ‖ ED25519 SIGNATURE)

The signature covers the body, the first three lines with their newlines. Whoever keeps
a checkpoint can later ask for a consistency proof from it: a history rewritten since
cannot produce one, whatever the operator does to the store.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ledger_backends.proofs import TreeHead, TreeProofs

from .log_keys import LogKey, key_id, log_origin

SIGNATURE_DASH = "\u2014"  # the em dash that begins a signed note's signature line


class NoSuchLogError(LookupError):
    """The signer holds no log key for the channel asked for."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head: `note` is the whole signed text, `root` the 32-byte root."""

    origin: str
    tree_size: int
    root: bytes
    note: str


def checkpoint_body(origin: str, head: TreeHead) -> str:
    """The signed part of a checkpoint note: origin, size and base64 root, each a line."""
    return f"{origin}\n{head.size}\n{base64.b64encode(head.root).decode('ascii')}\n"


class CheckpointSigner:
    """Signs each channel's tree heads with its log key.

    `proofs(channel)` gives the channel's TreeProofs. Blocking: `checkpoint` reads the
    store, so callers on an event loop run it in a thread. The last note signed per
    channel is kept, and returned again while the tree has not changed.
    """

    def __init__(
        self,
        network_id: str,
        keys: Mapping[str, LogKey],
        proofs: Callable[[str], TreeProofs],
    ) -> None:
        self._keys = dict(keys)
        self._proofs = proofs
        self._origins = {channel: log_origin(network_id, channel) for channel in self._keys}
        self._key_ids = {
            channel: key_id(self._origins[channel], key.public_key)
            for channel, key in self._keys.items()
        }
        self._last: dict[str, Checkpoint] = {}
        self._lock = threading.Lock()

    def origin(self, channel: str) -> str:
        """The channel log's origin; NoSuchLogError for a channel without a log key."""
        try:
            return self._origins[channel]
        except KeyError:
            raise NoSuchLogError(f"Channel {channel!r} has no log key.") from None

    def verifier_key(self, channel: str) -> str:
        """The signed-note verifier key of the channel's log (as in `log/CHANNEL.pub`)."""
        return self._keys[channel].verifier_key(self.origin(channel))

    def checkpoint(self, channel: str, size: int | None = None) -> Checkpoint:
        """The signed checkpoint of the channel's tree of `size` leaves (None: the current).

        NoSuchLogError for a channel without a log key; TreeNotAvailableError (a
        LedgerError) for a size beyond the current tree, or a channel with no tree yet.
        """
        origin = self.origin(channel)
        head = self._proofs(channel).head_at(size)
        with self._lock:
            last = self._last.get(channel)
        if last is not None and (last.tree_size, last.root) == (head.size, head.root):
            return last
        body = checkpoint_body(origin, head)
        signature = self._keys[channel].sign(body.encode("utf-8"))
        stamp = base64.b64encode(self._key_ids[channel] + signature).decode("ascii")
        signed = Checkpoint(
            origin=origin,
            tree_size=head.size,
            root=head.root,
            note=f"{body}\n{SIGNATURE_DASH} {origin} {stamp}\n",
        )
        with self._lock:
            self._last[channel] = signed
        return signed
