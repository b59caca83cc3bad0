"""Each channel's log key: the Ed25519 key pair that signs the channel's checkpoints.

Files, relative to the network directory (`network init` and `keys init` make them):

- `log/CHANNEL.key`: the private key, PKCS#8 PEM, mode 0600 in a directory of mode
  0700; never overwritten. Whoever holds it can sign checkpoints in the log's name.
- `log/CHANNEL.pub`: one line, the signed-note verifier key
  `ORIGIN+KEYID+BASE64(0x01 ‖ public key)`, which witnesses and clients pin.

The key's name in signed notes is the log's origin, `healthledger/NETWORK-ID/CHANNEL`;
its id is the first 4 bytes of SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key) (C2SP signed-note).
The public file is derived from the private key and the origin, so it can always be
written anew; the private key cannot.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

LOG_DIRECTORY = "log"
KEY_FILE_MODE = 0o600
LOG_DIRECTORY_MODE = 0o700
ORIGIN_PREFIX = "healthledger"
# The signed-note signature type of Ed25519, the first byte of a verifier key's key material.
ED25519_ALGORITHM = b"\x01"
KEY_ID_BYTES = 4
_MAX_FILE_BYTES = 4096  # a PEM Ed25519 key is 119 bytes: a larger file is not one


class LogKeyError(Exception):
    """A log key is missing, unreadable, open to others, malformed or not the published one.

    The message is one sentence naming the channel and the file; never the key.
    """


def log_origin(network_id: str, channel: str) -> str:
    """The channel log's origin, the first line of its checkpoints and its key's name."""
    return f"{ORIGIN_PREFIX}/{network_id}/{channel}"


def key_id(name: str, public_key: bytes) -> bytes:
    """The signed-note key id: 4 bytes of SHA-256 over name, newline, type and public key."""
    material = name.encode("utf-8") + b"\n" + ED25519_ALGORITHM + public_key
    return hashlib.sha256(material).digest()[:KEY_ID_BYTES]


def verifier_key(name: str, public_key: bytes) -> str:
    """The signed-note verifier key: `NAME+KEYID (8 hex)+BASE64(0x01 ‖ public key)`."""
    material = base64.b64encode(ED25519_ALGORITHM + public_key).decode("ascii")
    return f"{name}+{key_id(name, public_key).hex()}+{material}"


def key_paths(directory: Path, channel: str) -> tuple[Path, Path]:
    """`log/CHANNEL.key` and `log/CHANNEL.pub` under the network directory."""
    folder = directory / LOG_DIRECTORY
    return folder / f"{channel}.key", folder / f"{channel}.pub"


@dataclass(frozen=True)
class LogKey:
    """A channel's log signing key; `private` is never printed."""

    channel: str
    private: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls, channel: str) -> LogKey:
        return cls(channel, Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> bytes:
        """The 32 bytes of the Ed25519 public key."""
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def verifier_key(self, origin: str) -> str:
        """The line of `log/CHANNEL.pub` for the log of this origin."""
        return verifier_key(origin, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `message`."""
        return self.private.sign(message)

    def to_pem(self) -> bytes:
        return self.private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


@dataclass(frozen=True)
class LogKeyFiles:
    """What `make_missing_log_keys` did, per channel: key pairs made, keys already there
    (left alone), and public files written anew (missing, or not matching the key)."""

    made: dict[str, Path]
    present: dict[str, Path]
    republished: dict[str, Path]


def make_missing_log_keys(directory: Path, network_id: str, channels: Iterable[str]) -> LogKeyFiles:
    """Make a key pair for each channel without `log/CHANNEL.key`; never overwrite a key.

    A present key whose `.pub` is missing, or says another key or origin (the network id
    was set after the key was made), gets its `.pub` written anew from it.
    LogKeyError if a file cannot be read or written.
    """
    made: dict[str, Path] = {}
    present: dict[str, Path] = {}
    republished: dict[str, Path] = {}
    for channel in channels:
        origin = log_origin(network_id, channel)
        key_path, pub_path = key_paths(directory, channel)
        if not key_path.exists():
            key = LogKey.generate(channel)
            try:
                _write_new_key(key_path, key)
            except LogKeyError:
                if not key_path.exists():
                    raise
                # Another process made it a moment ago: it stays, and is checked below.
            else:
                _write_public(pub_path, key.verifier_key(origin))
                made[channel] = key_path
                continue
        present[channel] = key_path
        key = read_log_key(directory, channel)
        if _read_public(channel, pub_path) != key.verifier_key(origin):
            _write_public(pub_path, key.verifier_key(origin))
            republished[channel] = pub_path
    return LogKeyFiles(made=made, present=present, republished=republished)


def load_log_keys(directory: Path, network_id: str, channels: Iterable[str]) -> dict[str, LogKey]:
    """Each channel's log key, checked against its published `.pub`; LogKeyError names the
    first channel whose key is missing, unreadable, open to others or not the published one.

    A `.pub` that disagrees with the key would have witnesses pin a key that signs nothing,
    or one for another origin: the server refuses to start rather than publish under it.
    """
    keys: dict[str, LogKey] = {}
    for channel in channels:
        key = read_log_key(directory, channel)
        _, pub_path = key_paths(directory, channel)
        expected = key.verifier_key(log_origin(network_id, channel))
        published = _read_public(channel, pub_path)
        if published is None:
            raise LogKeyError(
                f"channel {channel}: its log public key {pub_path} is missing: "
                f"write it with 'healthledger keys init {directory}'."
            )
        if published != expected:
            raise LogKeyError(
                f"channel {channel}: its log public key {pub_path} is not that of "
                f"{key_paths(directory, channel)[0]} for origin "
                f"{log_origin(network_id, channel)}: write it anew with "
                f"'healthledger keys init {directory}'."
            )
        keys[channel] = key
    return keys


def read_log_key(directory: Path, channel: str) -> LogKey:
    """The private key in `log/CHANNEL.key`; LogKeyError if it cannot be used."""
    path, _ = key_paths(directory, channel)
    where = f"channel {channel}: its log key {path}"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise LogKeyError(
            f"{where} is missing: make it with 'healthledger keys init {directory}' "
            "(or restore it from a backup: a new key is a new log identity)."
        ) from None
    except OSError as exc:
        raise LogKeyError(f"{where} cannot be read: {exc.strerror}.") from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise LogKeyError(f"{where} is not a file.")
        if status.st_mode & 0o077:
            raise LogKeyError(f"{where} must be readable by its owner only (chmod 600).")
        raw = os.read(fd, _MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise LogKeyError(f"{where} cannot be read: {exc.strerror}.") from None
    finally:
        os.close(fd)
    try:
        if len(raw) > _MAX_FILE_BYTES:
            raise ValueError("too long")
        private = load_pem_private_key(raw, password=None)
    except (ValueError, TypeError):
        raise LogKeyError(f"{where} is not an unencrypted PKCS#8 PEM private key.") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise LogKeyError(f"{where} is not an Ed25519 key.")
    return LogKey(channel, private)


def _read_public(channel: str, path: Path) -> str | None:
    """The verifier key line in `path`, None if there is no such file."""
    try:
        raw = path.read_bytes()[:_MAX_FILE_BYTES]
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LogKeyError(
            f"channel {channel}: its log public key {path} cannot be read: {exc.strerror}."
        ) from None
    return raw.decode("utf-8", errors="replace").strip()


def _ensure_directory(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(parents=True, mode=LOG_DIRECTORY_MODE, exist_ok=True)
        os.chmod(directory, LOG_DIRECTORY_MODE)  # whatever the umask


def _write_new_key(path: Path, key: LogKey) -> None:
    """Write the private key to a new file, mode 0600; LogKeyError if it exists.

    Written and fsynced under a temporary name, then linked into place (which fails if the
    name exists): the file appears complete or not at all, and is never overwritten.
    """
    try:
        _ensure_directory(path.parent)
        temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except OSError as exc:
        raise LogKeyError(f"The log key file {path} cannot be created: {exc.strerror}.") from None
    try:
        try:
            os.fchmod(fd, KEY_FILE_MODE)
            os.write(fd, key.to_pem())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temporary, path)
    except FileExistsError:
        raise LogKeyError(
            f"The log key file {path} exists already and is never overwritten."
        ) from None
    except OSError as exc:
        raise LogKeyError(f"The log key file {path} cannot be written: {exc.strerror}.") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    _fsync_directory(path.parent)


def _write_public(path: Path, line: str) -> None:
    """Write (or replace) the public file atomically, mode 0644."""
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        _ensure_directory(path.parent)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.fchmod(fd, 0o644)
            os.write(fd, (line + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise LogKeyError(f"The log public key {path} cannot be written: {exc.strerror}.") from None
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a link or rename in `directory` durable (skipped where directories cannot be
    opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
