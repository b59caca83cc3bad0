"""The witness: an organisation's own record of each channel's log, checked at every round.

Run by every organisation with its own client certificate (`healthledger witness`). For
each channel it fetches the server's signed checkpoint (`GET /checkpoint/CHANNEL`) and
checks the signature against the log key it pinned at its first run. When it kept a
checkpoint before, the new tree must extend the kept one: the same root at the same size,
never fewer leaves, and for more leaves a consistency proof (GraphQL `consistencyProof`)
that verifies against the kept root and the new one. Only then is the new checkpoint kept.

So an operator who rewrites history — however consistent the rewritten chain is with
itself, which is all `healthledger verify` can check — is caught by the first round of
any witness that kept a checkpoint from before the rewrite.

The state directory holds, per channel, `CHANNEL.pub` (the pinned verifier key, copied
from the network directory's `log/CHANNEL.pub` at the first run) and `CHANNEL.checkpoint`
(the last checkpoint verified); each is written whole or not at all (a temporary file,
then a rename). A failed check keeps the old checkpoint, so every later round fails too
until a person looks.

Outcomes: a `Consistent` line per channel; a `MisbehavingLogError` alarm (exit 1: a signature
that does not verify, a log key other than the pinned one, a shrunk tree, another root at
the same size, a consistency proof that fails or is refused); `CannotWitnessError` (exit 2:
bad usage, an unreachable or failing server; nothing stored changes).

This module uses only the network directory's files, the server's public endpoints and
`proofcheck`'s verifier: nothing of the server or the ledger code.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .notes import NoteError, SignedCheckpoint, VerifierKey, parse_verifier_key, verify_checkpoint
from .proofs import ProofError, verify_consistency

DEFAULT_INTERVAL_SECONDS = 300.0
REQUEST_TIMEOUT_SECONDS = 10.0
PUBKEY_SUFFIX = ".pub"
CHECKPOINT_SUFFIX = ".checkpoint"
# GraphQL error codes by which the log declines to prove what it has just signed; any other
# (UNAVAILABLE, INTERNAL...) says nothing about the log: the round could not check it.
_REFUSAL_CODES = frozenset({"BAD_USER_INPUT", "NOT_FOUND"})
CONSISTENCY_QUERY = """
query($channel: String!, $from: Int!, $to: Int!) {
  consistencyProof(channel: $channel, fromSize: $from, toSize: $to) { fromSize toSize hashes }
}"""


class CannotWitnessError(Exception):
    """The round could not check the log (bad usage, server unreachable): exit 2, one line."""


class MisbehavingLogError(Exception):
    """The log broke its promise for a channel: exit 1, one line naming both tree sizes."""

    def __init__(self, channel: str, message: str) -> None:
        super().__init__(f"channel {channel}: {message}")
        self.channel = channel


@dataclass(frozen=True)
class WitnessConfig:
    """Who witnesses (an enrolled user of `org`), which server, where the state is kept."""

    network: Path
    org: str
    uid: str
    server: str
    state: Path
    channels: tuple[str, ...]

    @classmethod
    def from_network(
        cls,
        network: Path,
        *,
        org: str,
        uid: str,
        server: str,
        state: Path,
        channels: Sequence[str] = (),
    ) -> WitnessConfig:
        """The configuration, checked: CannotWitnessError if the organisation, the user's files
        or a channel are not in the network, or the organisation is not in a channel.

        Without `channels`, every channel `org` is a member of (network.toml).
        """
        orgs, membership = _membership(network)
        if org not in orgs:
            known = ", ".join(sorted(orgs))
            raise CannotWitnessError(f"The network has no organisation {org!r} (it has: {known}).")
        for name in channels:
            if name not in membership:
                known = ", ".join(sorted(membership))
                raise CannotWitnessError(f"The network has no channel {name!r} (it has: {known}).")
            if org not in membership[name]:
                raise CannotWitnessError(
                    f"Organisation {org!r} is not a member of channel {name!r}."
                )
        chosen = tuple(dict.fromkeys(channels)) or tuple(
            name for name, members in membership.items() if org in members
        )
        if not chosen:
            raise CannotWitnessError(f"Organisation {org!r} is a member of no channel.")
        if not server.startswith("https://"):
            raise CannotWitnessError(f"--server must be an https:// URL, not {server!r}.")
        config = cls(network, org, uid, server.rstrip("/"), state, chosen)
        for path in (config.certificate, config.private_key, config.server_ca):
            if not path.is_file():
                raise CannotWitnessError(f"{path} is missing: the witness needs {_role_of(path)}.")
        return config

    @property
    def certificate(self) -> Path:
        return self.network / "users" / self.org / f"{self.uid}.pem"

    @property
    def private_key(self) -> Path:
        return self.network / "users" / self.org / f"{self.uid}.key"

    @property
    def server_ca(self) -> Path:
        return self.network / "tls" / "ca.pem"

    def published_key(self, channel: str) -> Path:
        """The network directory's `log/CHANNEL.pub`, pinned at the first run."""
        return self.network / "log" / f"{channel}{PUBKEY_SUFFIX}"

    def pinned_key(self, channel: str) -> Path:
        return self.state / f"{channel}{PUBKEY_SUFFIX}"

    def kept_checkpoint(self, channel: str) -> Path:
        return self.state / f"{channel}{CHECKPOINT_SUFFIX}"

    def tls_context(self) -> ssl.SSLContext:
        """Trusts the network's server CA and presents the witness's own certificate."""
        context = ssl.create_default_context(cafile=self.server_ca)
        try:
            context.load_cert_chain(self.certificate, self.private_key)
        except (ssl.SSLError, OSError) as exc:
            raise CannotWitnessError(
                f"The certificate {self.certificate} and key {self.private_key} cannot be "
                f"used: {exc}."
            ) from None
        return context


@dataclass(frozen=True)
class Consistent:
    """A channel that passed: the tree now, and the size kept before (None: first round)."""

    channel: str
    tree_size: int
    kept_size: int | None

    def line(self) -> str:
        if self.kept_size is None:
            return (
                f"witness: channel {self.channel}: tree of {self.tree_size} leaves, "
                "its first checkpoint kept"
            )
        return (
            f"witness: channel {self.channel}: tree of {self.tree_size} leaves, "
            f"consistent with {self.kept_size}"
        )


@dataclass
class Round:
    """What one round found: channels that passed, alarms, and why it stopped early (if)."""

    passed: list[Consistent] = field(default_factory=list)
    alarms: list[MisbehavingLogError] = field(default_factory=list)
    failure: CannotWitnessError | None = None


class Witness:
    """One organisation's witness over the channels of `config`; `round()` checks each once."""

    def __init__(self, config: WitnessConfig) -> None:
        self.config = config
        self._client = httpx.Client(
            base_url=config.server, verify=config.tls_context(), timeout=REQUEST_TIMEOUT_SECONDS
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Witness:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def round(self) -> Round:
        """Check every channel once. The round ends at the first channel the server cannot
        be asked about; what was found before it stands."""
        outcome = Round()
        for channel in self.config.channels:
            try:
                outcome.passed.append(self.check(channel))
            except MisbehavingLogError as alarm:
                outcome.alarms.append(alarm)
            except CannotWitnessError as failure:
                outcome.failure = failure
                break
        return outcome

    def check(self, channel: str) -> Consistent:
        """Fetch, verify and keep the channel's checkpoint, or raise MisbehavingLogError
        (exit 1) or CannotWitnessError (exit 2).

        Nothing is written unless the channel passes: the key is pinned, and the new
        checkpoint kept, only then.
        """
        key, to_pin = self._pinned_key(channel)
        kept = self._kept(channel, key)
        kept_size = None if kept is None else kept.tree_size
        note = self._fetch_checkpoint(channel)
        try:
            current = verify_checkpoint(note, key)
        except NoteError as exc:
            raise MisbehavingLogError(
                channel,
                f"the log's checkpoint of {_claimed_size(note)} does not verify with the pinned "
                f"log key ({_kind(exc)}); the witness kept "
                + ("no checkpoint yet" if kept_size is None else f"a tree of {_leaves(kept_size)}"),
            ) from None
        if kept is not None:
            self._check_extends(channel, kept, current)
        if to_pin is not None:
            _write_atomically(self.config.pinned_key(channel), to_pin + "\n")
        _write_atomically(self.config.kept_checkpoint(channel), note)
        return Consistent(channel, current.tree_size, kept_size)

    def _check_extends(
        self, channel: str, kept: SignedCheckpoint, current: SignedCheckpoint
    ) -> None:
        """MisbehavingLogError unless the current tree extends the kept one."""
        old, new = kept.tree_size, current.tree_size
        if new < old:
            raise MisbehavingLogError(
                channel,
                f"the log's tree of {_leaves(new)} is smaller than the one of {_leaves(old)} "
                "the witness kept: the log shrank",
            )
        if new == old:
            if current.root != kept.root:
                raise MisbehavingLogError(
                    channel,
                    f"the log's tree of {_leaves(new)} is not the one of {_leaves(old)} the "
                    "witness kept: the roots differ",
                )
            return
        if old == 0:
            return  # every tree extends the empty one
        hashes = self._consistency_hashes(channel, old, new)
        try:
            verify_consistency(old, new, kept.root, current.root, hashes)
        except ProofError as exc:
            raise MisbehavingLogError(
                channel,
                f"the log's tree of {_leaves(new)} does not extend the one of {_leaves(old)} "
                f"the witness kept: the consistency proof fails ({_kind(exc)})",
            ) from None

    def _consistency_hashes(self, channel: str, old: int, new: int) -> list[bytes]:
        variables = {"channel": channel, "from": old, "to": new}
        body = self._request(
            "POST",
            "/graphql",
            f"a consistency proof for channel {channel}",
            json={"query": CONSISTENCY_QUERY, "variables": variables},
        )
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            code = str((first.get("extensions") or {}).get("code", ""))
            message = _one_line(str(first.get("message", "")))
            if code in _REFUSAL_CODES:
                raise MisbehavingLogError(
                    channel,
                    f"the log gives no proof that its tree of {_leaves(new)} extends the one of "
                    f"{_leaves(old)} the witness kept: {message}",
                )
            raise CannotWitnessError(
                f"channel {channel}: the server gave no consistency proof ({code or 'error'}): "
                f"{message}"
            )
        try:
            proof = body["data"]["consistencyProof"]
            if (proof["fromSize"], proof["toSize"]) != (old, new):
                raise ValueError("sizes")
            return [bytes.fromhex(h) for h in proof["hashes"]]
        except (KeyError, TypeError, ValueError):
            raise MisbehavingLogError(
                channel,
                f"the log's answer for a proof that its tree of {_leaves(new)} extends the one "
                f"of {_leaves(old)} the witness kept is not a consistency proof",
            ) from None

    def _fetch_checkpoint(self, channel: str) -> str:
        response = self._send("GET", f"/checkpoint/{channel}", f"the checkpoint of {channel}")
        if response.status_code == 404:
            raise CannotWitnessError(
                f"channel {channel}: the server has no such channel for organisation "
                f"{self.config.org} (HTTP 404)."
            )
        _require_ok(response, f"the checkpoint of {channel}")
        return response.text

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        response = self._send(method, path, what, **kwargs)
        if response.status_code not in (200, 400):
            _require_ok(response, what)
        try:
            return response.json()
        except ValueError:
            raise CannotWitnessError(
                f"the server answered a request for {what} with no JSON."
            ) from None

    def _send(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            reason = _one_line(str(exc)) or type(exc).__name__
            raise CannotWitnessError(
                f"the server {self.config.server} cannot be reached for {what}: {reason}."
            ) from None

    def _pinned_key(self, channel: str) -> tuple[VerifierKey, str | None]:
        """The key pinned at the first run and, if this is the first run, the line to pin.

        MisbehavingLogError if the network directory publishes another key than the pinned one.
        """
        pinned_path = self.config.pinned_key(channel)
        published_path = self.config.published_key(channel)
        published = _read_line(published_path)
        pinned = _read_line(pinned_path)
        if pinned is None:
            if published is None:
                raise CannotWitnessError(
                    f"channel {channel}: {published_path} is missing, and no log key is pinned "
                    f"in {pinned_path}: copy the log's public key there first."
                )
            return _parse_key(published, published_path), published
        key = _parse_key(pinned, pinned_path)
        if published is not None and published != pinned:
            raise MisbehavingLogError(
                channel,
                f"the log key in {published_path} is not the one pinned at the first run "
                f"({pinned_path}): a new key makes a new log, whose checkpoints the witness "
                "cannot relate to the ones it kept",
            )
        return key, None

    def _kept(self, channel: str, key: VerifierKey) -> SignedCheckpoint | None:
        path = self.config.kept_checkpoint(channel)
        try:
            note = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CannotWitnessError(f"{path} cannot be read: {exc.strerror}.") from None
        try:
            return verify_checkpoint(note, key)
        except NoteError as exc:
            raise CannotWitnessError(
                f"the kept checkpoint {path} does not verify with the pinned key ({exc}): "
                "the state directory was changed; restore it from a backup."
            ) from None


def run(
    config: WitnessConfig,
    *,
    once: bool,
    interval: float = DEFAULT_INTERVAL_SECONDS,
    say: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run rounds, once or every `interval` seconds until interrupted; returns the exit code.

    A passing channel is one line to `say`; an alarm or a round that could not check is
    one line to `warn`. 1 after a round with an alarm (the run ends there, loop or not);
    with `once`, 2 when the round could not check everything (or was interrupted), else 0.
    The loop reports a round that could not check and tries again at the next;
    interrupted, it returns 0.
    """
    with Witness(config) as witness:
        try:
            while True:
                outcome = witness.round()
                for passed in outcome.passed:
                    say(passed.line())
                for alarm in outcome.alarms:
                    warn(f"witness: {alarm}")
                if outcome.failure is not None:
                    warn(f"witness: {outcome.failure}")
                if outcome.alarms:
                    return 1
                if once:
                    return 0 if outcome.failure is None else 2
                sleep(interval)
        except KeyboardInterrupt:
            # Stopping the service is no failure; a --once round cut short did not check.
            return 2 if once else 0


def _membership(network: Path) -> tuple[set[str], dict[str, tuple[str, ...]]]:
    """The organisations, and each channel's members, as network.toml lists them."""
    path = network / "network.toml"
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except OSError as exc:
        raise CannotWitnessError(f"{path} cannot be read: {exc.strerror}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise CannotWitnessError(f"{path} is not valid TOML: {exc}.") from None
    orgs = {str(entry.get("id")) for entry in _entries(raw, "orgs")}
    members = {
        str(entry.get("name")): tuple(str(org) for org in entry.get("members") or ())
        for entry in _entries(raw, "channels")
    }
    if not orgs or not members:
        raise CannotWitnessError(f"{path} lists no organisations or no channels.")
    return orgs, members


def _entries(raw: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found = raw.get(name)
    return [entry for entry in found if isinstance(entry, dict)] if isinstance(found, list) else []


def _role_of(path: Path) -> str:
    if path.suffix == ".key":
        return "the user's private key"
    if path.parent.name == "tls":
        return "the network's TLS CA certificate"
    return "the user's certificate (healthledger enroll)"


def _require_ok(response: httpx.Response, what: str) -> None:
    if response.status_code != 200:
        reason = _one_line(response.text)[:200] or response.reason_phrase
        raise CannotWitnessError(
            f"the server answered a request for {what} with HTTP {response.status_code}: {reason}"
        )


def _parse_key(line: str, path: Path) -> VerifierKey:
    try:
        return parse_verifier_key(line)
    except NoteError as exc:
        raise CannotWitnessError(f"{path} is not a log verifier key: {exc}.") from None


def _read_line(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise CannotWitnessError(f"{path} cannot be read: {exc}.") from None
    return text.strip()


def _claimed_size(note: str) -> str:
    """The tree size a note claims, for the alarm line, whether or not it verifies."""
    lines = note.split("\n")
    if len(lines) > 1 and lines[1].isdigit():
        return _leaves(int(lines[1]))
    return "unreadable size"


def _leaves(size: int) -> str:
    return "1 leaf" if size == 1 else f"{size} leaves"


def _kind(error: ProofError) -> str:
    """What kind of failure the verifier found ("bad signature", "root mismatch"), without
    the hashes its message goes on to quote."""
    return str(error).split(":", 1)[0]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text`: a temporary file in the same directory, fsynced, renamed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        with temporary.open("x", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError, UnboundLocalError):
            temporary.unlink()
        raise CannotWitnessError(f"{path} cannot be written: {exc.strerror}.") from None
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
