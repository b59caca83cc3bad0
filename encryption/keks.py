"""Key-encryption keys (KEKs): one per channel, kept in a file or an environment variable.

A KEK is 32 random bytes, written as standard base64 (44 characters; trailing
whitespace ignored). It never touches a ledger or a key store: it only wraps the
channel's data keys (keyring.py), so whoever copies the ledger and its key store
without the KEK reads nothing. A KEK is named by its id, the first 16 hex digits
of HMAC-SHA256(key, "healthledger key-encryption key id"): the key store records
which KEK wrapped each data key without revealing it.

A KEK file must be readable by its owner only (mode 600); a file that group or
others may read or write is refused rather than trusted. `write_kek_file` makes
one owner-only, in a directory it makes owner-only (0700), and never overwrites.

Rotation of a file source (`healthledger keys rotate`), every step crash-safe:

1. `begin_rotation` writes the new KEK to `PATH.next`, or reuses the one there:
   an interrupted rotation resumes with the same new key, so nothing wrapped by
   it is ever orphaned. The file appears under its name only once complete (it is
   written to a temporary name, fsynced, then hard-linked into place, which also
   refuses to replace a `.next` another rotation wrote first). From then on
   `KekSource.load` returns both keys, so every process can unwrap either.
2. The keyring rewraps every data key with the new KEK (`Keyring.rotate`).
3. `finish_rotation` hard-links `PATH` to `PATH.<old id>.old`, fsyncs the
   directory, atomically renames `PATH.next` over `PATH`, and fsyncs the directory
   again. `PATH` exists at every instant: before the rename it holds the old key
   (with `.next` still beside it, so both are loaded), after it the new one. The
   old key is linked as `.old` before the rename can be durable, so a crash never
   loses it, and it stays until the operator deletes it (it still opens a key
   store backup taken before the rotation). Running `finish_rotation` again after
   a crash completes the steps not yet done, or finds them all done.

An environment source cannot hold two keys at once, so healthledger cannot rotate
it: the operator copies the current key into a KEK file, points the channel's
`kek_file` at it and rotates that, then stores the new key in the secrets manager
and points `kek_env` back at it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

KEK_BYTES = 32
KEK_TEXT_CHARS = 44
KEK_FILE_MODE = 0o600
KEK_DIRECTORY_MODE = 0o700
_ID_LABEL = b"healthledger key-encryption key id"
_ID_HEX_DIGITS = 16
_MAX_FILE_BYTES = 4096  # far more than a KEK's text, so a wrong file is refused, not read whole


class KekError(Exception):
    """A key-encryption key is missing, unreadable, malformed or not the one needed.

    The message is one sentence naming the channel and where its KEK comes from;
    it never contains the key.
    """


@dataclass(frozen=True)
class Kek:
    """A key-encryption key: `id` names it, `key` is the 32 secret bytes (never printed)."""

    id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEK_BYTES:
            raise ValueError(f"A key-encryption key is {KEK_BYTES} bytes, not {len(self.key)}.")
        if not hmac.compare_digest(self.id.encode("utf-8"), kek_id(self.key).encode("ascii")):
            raise ValueError("The id given does not name this key-encryption key.")

    @classmethod
    def from_key(cls, key: bytes) -> Kek:
        """The KEK made of these 32 bytes, with its id."""
        return cls(kek_id(key), key)

    @classmethod
    def generate(cls) -> Kek:
        """A new KEK of 32 bytes from the operating system's random source."""
        return cls.from_key(secrets.token_bytes(KEK_BYTES))

    @classmethod
    def from_text(cls, text: str, where: str) -> Kek:
        """The KEK written as `text` (base64, trailing whitespace ignored).

        `where` begins the error's sentence and names the channel and the source,
        e.g. "channel medical: its key-encryption key keys/medical.kek".
        """
        try:
            key = base64.b64decode(text.rstrip(), validate=True)
        except (binascii.Error, ValueError):
            raise KekError(
                f"{where} is not valid base64 "
                f"(a key-encryption key is {KEK_TEXT_CHARS} characters of base64)."
            ) from None
        if len(key) != KEK_BYTES:
            raise KekError(
                f"{where} holds {len(key)} bytes where a key-encryption key has {KEK_BYTES}."
            )
        return cls.from_key(key)

    def to_text(self) -> str:
        """The key as standard base64, as KEK files and variables hold it."""
        return base64.b64encode(self.key).decode("ascii")


def kek_id(key: bytes) -> str:
    """The id of a KEK: names it in the key store without revealing anything of it."""
    return hmac.new(key, _ID_LABEL, hashlib.sha256).hexdigest()[:_ID_HEX_DIGITS]


@dataclass(frozen=True)
class KekSource:
    """Where a channel's KEK comes from: a file (`path`) or an environment variable (`env`)."""

    channel: str
    path: Path | None = None
    env: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.env is None):
            raise ValueError(
                f"Channel {self.channel}'s key-encryption key comes from a file or from an "
                "environment variable: exactly one of path and env."
            )

    def describe(self) -> str:
        """The file's path or `$VAR`, as messages name the source."""
        if self.path is not None:
            return str(self.path)
        return f"${self.env}"

    @property
    def next_path(self) -> Path:
        """`PATH.next`: the new KEK while a rotation is under way."""
        return _file_path(self).with_name(_file_path(self).name + ".next")

    def old_path(self, old: Kek) -> Path:
        """`PATH.<old id>.old`: where a finished rotation keeps the old KEK."""
        path = _file_path(self)
        return path.with_name(f"{path.name}.{old.id}.old")

    def stamp(self) -> tuple[tuple[int, int] | None, ...]:
        """What changes when a rotation writes or renames a key file: (inode, mtime) of
        `PATH` and `PATH.next`, None for one that is missing; () for an env source."""
        if self.env is not None:
            return ()
        stamps: list[tuple[int, int] | None] = []
        for path in (_file_path(self), self.next_path):
            try:
                status = path.stat()
            except OSError:
                stamps.append(None)
            else:
                stamps.append((status.st_ino, status.st_mtime_ns))
        return tuple(stamps)

    def load(self) -> list[Kek]:
        """The channel's KEKs, current first: a file source's `PATH`, then `PATH.next`
        when a rotation is under way (at least one must exist); an env source's one key.

        KekError if the file or variable is missing, unreadable or malformed, or the
        file is open to group or others.
        """
        if self.env is not None:
            text = os.environ.get(self.env)
            if text is None or not text.strip():
                raise KekError(
                    f"channel {self.channel}: its key-encryption key comes from ${self.env}, "
                    "which is not set."
                )
            return [Kek.from_text(text, _where(self, f"${self.env}"))]
        keks = [
            kek
            for kek in (
                _read_kek_file(self, _file_path(self)),
                _read_kek_file(self, self.next_path),
            )
            if kek is not None
        ]
        if not keks:
            raise KekError(f"{_where(self, self.describe())} is missing.")
        return keks


def write_kek_file(path: Path, kek: Kek) -> None:
    """Write `kek` to a new file at `path`, mode 0600 (its directory made 0700 if missing).

    KekError if the file exists (a KEK is never overwritten: data keys may be wrapped
    by it) or cannot be written. The file appears complete or not at all: the key is
    written and fsynced under a temporary name in the same directory, then linked
    into place (which fails if the name exists), and the directory is fsynced.
    """
    directory = path.parent
    try:
        if not directory.exists():
            directory.mkdir(parents=True, mode=KEK_DIRECTORY_MODE, exist_ok=True)
            os.chmod(directory, KEK_DIRECTORY_MODE)  # whatever the umask
        temporary = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEK_FILE_MODE)
    except OSError as exc:
        raise KekError(
            f"The key-encryption key file {path} cannot be created: {exc.strerror}."
        ) from None
    try:
        try:
            os.fchmod(fd, KEK_FILE_MODE)
            os.write(fd, (kek.to_text() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temporary, path)
    except FileExistsError:
        raise KekError(
            f"The key-encryption key file {path} exists already and is never overwritten."
        ) from None
    except OSError as exc:
        raise KekError(
            f"The key-encryption key file {path} cannot be written: {exc.strerror}."
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    _fsync_directory(directory)


def begin_rotation(source: KekSource) -> tuple[Kek, Kek]:
    """Start (or resume) rotating a file source's KEK: returns (current, new).

    The new KEK is `PATH.next`: made now, or read if an interrupted rotation left
    it. KekError for an env source, or if `PATH` is missing or unreadable.
    """
    path = _rotatable_path(source)
    current = _read_kek_file(source, path)
    if current is None:
        raise KekError(f"{_where(source, str(path))} is missing.")
    new = _read_kek_file(source, source.next_path)
    if new is None:
        try:
            write_kek_file(source.next_path, Kek.generate())
        except KekError:
            # Another rotation may have written `.next` first: use its key if so.
            if not source.next_path.exists():
                raise
        new = _read_kek_file(source, source.next_path)
        if new is None:
            raise KekError(f"{_where(source, str(source.next_path))} vanished while rotating.")
    return current, new


def finish_rotation(source: KekSource, old: Kek) -> Path:
    """Make `PATH.next` the channel's KEK and keep `old` as `PATH.<old id>.old`; returns that path.

    Call once every data key is wrapped by the new KEK (`Keyring.rotate`). Safe to
    run again after a crash (module docstring); KekError for an env source, when no
    rotation is under way, or when `PATH` does not hold `old`.
    """
    path = _rotatable_path(source)
    old_path = source.old_path(old)
    current = _read_kek_file(source, path)
    if not source.next_path.exists():
        kept = _read_kek_file(source, old_path)
        if current is not None and current.id != old.id and kept is not None:
            return old_path  # finished already: a re-run after a crash
        raise KekError(
            f"channel {source.channel}: no rotation of its key-encryption key {path} "
            "is under way (there is no .next file)."
        )
    if current is None or current.id != old.id:
        raise KekError(
            f"{_where(source, str(path))} is not the key-encryption key "
            f"{old.id} whose rotation is being finished."
        )
    if _read_kek_file(source, source.next_path) is None:
        raise KekError(f"{_where(source, str(source.next_path))} vanished while rotating.")
    try:
        try:
            os.link(path, old_path)
        except FileExistsError:
            kept = _read_kek_file(source, old_path)
            if kept is None or kept.id != old.id:
                raise KekError(
                    f"{_where(source, str(old_path))} exists and does not hold the old key."
                ) from None
        _fsync_directory(path.parent)
        os.replace(source.next_path, path)
    except OSError as exc:
        raise KekError(
            f"{_where(source, str(path))} cannot be replaced by its .next file: {exc.strerror}."
        ) from None
    _fsync_directory(path.parent)
    return old_path


def _where(source: KekSource, place: str) -> str:
    """The start of an error's sentence: the channel and where its KEK is."""
    return f"channel {source.channel}: its key-encryption key {place}"


def _file_path(source: KekSource) -> Path:
    if source.path is None:
        raise KekError(f"channel {source.channel}: its key-encryption key is not a file.")
    return source.path


def _rotatable_path(source: KekSource) -> Path:
    if source.path is None:
        raise KekError(
            f"channel {source.channel}: its key-encryption key comes from ${source.env}, "
            "which healthledger cannot rotate: copy the key into a kek_file and rotate that, "
            "then store the new key in your secrets manager."
        )
    return source.path


def _read_kek_file(source: KekSource, path: Path) -> Kek | None:
    """The KEK in `path`; None if there is no such file; KekError if it cannot be used."""
    where = _where(source, str(path))
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KekError(f"{where} cannot be read: {exc.strerror}.") from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise KekError(f"{where} is not a file.")
        if status.st_mode & 0o077:
            raise KekError(f"{where} must be readable by its owner only (chmod 600).")
        raw = os.read(fd, _MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise KekError(f"{where} cannot be read: {exc.strerror}.") from None
    finally:
        os.close(fd)
    if len(raw) > _MAX_FILE_BYTES:
        raise KekError(f"{where} is far too long to be a key-encryption key.")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise KekError(f"{where} is not valid base64 (it holds non-ASCII bytes).") from None
    return Kek.from_text(text, where)


def _fsync_directory(directory: Path) -> None:
    """Make renames and links in `directory` durable (a no-op where directories cannot be
    opened, which is not Linux)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
