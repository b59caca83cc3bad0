"""The replay of a check from block 0 kept in a temporary SQLite database, and the stored world
state and history compared with it there: memory holds a chunk of blocks, however large the
ledger.

`DiskReplay` replays the valid write-sets a chunk at a time (the versions the chunk reads
looked up in one query, its writes written in one), then takes the stored state and history
in whatever order the store scans them and finds the earliest damage with SQL. The database
is a file in a temporary directory, written without a journal or syncs (it is thrown away
with the check) and with a bounded page cache; `close` deletes it.

A SQLite ledger's state and history can instead be copied by SQLite itself, the ledger file
attached read-only (`copy_stored`): no row becomes Python values on the way. What the copy
finds intact is intact as the scans would have found it (`copy_matches` says when); anything
else, the scans decide.

Which damage is named is as `MemoryReplay` (and the check before this one) names it: the
earliest block; on a tie a stored world-state row that no valid transaction wrote or that
differs (the first such key in code-point order), then a missing row, then a key's history.
A key's history is damaged at the first entry, oldest first, where stored and replayed part:
the earliest (block, transaction) whose entries differ in any field, or that only one side
has, or that the stored history holds more than once.
"""

from __future__ import annotations

import functools
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import ParamSpec, TypeVar
from urllib.parse import quote

from .errors import LedgerError
from .records import Transaction, Version
from .verify_replay import (
    HISTORY_DIFFERS,
    STATE_DIFFERS,
    STATE_EXTRA,
    STATE_MISSING,
    DamageFoundError,
    check_transaction,
)

P = ParamSpec("P")
R = TypeVar("R")
# Pages of the temporary database kept in memory (KiB), whatever the ledger's size.
CACHE_KIB = 16 * 1024
# Keys per statement when the versions a chunk reads are looked up.
LOOKUP_BATCH = 500

_SCHEMA = (
    # Columns without a type keep each value as Python gave it, so comparing is exact.
    "CREATE TABLE replay_state (key PRIMARY KEY, value, block, tx) WITHOUT ROWID",
    # Appended in block order; indexed only if a comparison needs to look its rows up.
    "CREATE TABLE replay_history (key, block, tx, tx_id, value, creator_uid, creator_msp,"
    " timestamp)",
    "CREATE TABLE stored_state (key PRIMARY KEY, value, block, tx) WITHOUT ROWID",
    # `copies` counts entries stored more than once for one (key, block, transaction).
    "CREATE TABLE stored_history (key, block, tx, tx_id, value, creator_uid, creator_msp,"
    " timestamp, copies DEFAULT 1, PRIMARY KEY (key, block, tx)) WITHOUT ROWID",
    "CREATE TABLE left_out (key PRIMARY KEY) WITHOUT ROWID",
)
# The replay's writes (`end_chunk`; bench.verify_floor times them alone).
REPLAY_STATE_WRITE = "INSERT OR REPLACE INTO replay_state VALUES (?, ?, ?, ?)"
REPLAY_HISTORY_WRITE = "INSERT INTO replay_history VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
# The stored rows of a channel, taken row by row as the store's scans give them
# (`load_stored`) or copied from the ledger file attached as `ledger` (`copy_stored`), by the
# same rules: a state row met twice is held once, a history entry met twice is counted.
_INTO_STORED_STATE = "INSERT OR REPLACE INTO stored_state"
_INTO_STORED_HISTORY = (
    "INSERT INTO stored_history (key, block, tx, tx_id, value, creator_uid, creator_msp, timestamp)"
)
_COUNT_COPIES = " ON CONFLICT (key, block, tx) DO UPDATE SET copies = copies + 1"
_STORED_STATE = f"{_INTO_STORED_STATE} VALUES (?, ?, ?, ?)"
_STORED_HISTORY = f"{_INTO_STORED_HISTORY} VALUES (?, ?, ?, ?, ?, ?, ?, ?){_COUNT_COPIES}"
_COPY_STATE = (
    f"{_INTO_STORED_STATE} SELECT key, value, block_number, tx_index"
    " FROM ledger.ledger_state WHERE channel = ?"
)
_COPY_HISTORY = (
    f"{_INTO_STORED_HISTORY} SELECT key, block_number, tx_index, tx_id, value, creator_uid,"
    f" creator_msp, timestamp FROM ledger.ledger_history WHERE channel = ?{_COUNT_COPIES}"
)
_SAME_HISTORY = (
    "s.tx_id IS r.tx_id AND s.value IS r.value AND s.creator_uid IS r.creator_uid"
    " AND s.creator_msp IS r.creator_msp AND s.timestamp IS r.timestamp"
)


class ScratchSpaceError(LedgerError):
    """The check's temporary database cannot be made or written (no room, no temporary
    directory): the chain was not checked, which says nothing about its state."""


@contextmanager
def _scratch(doing: str) -> Iterator[None]:
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        raise ScratchSpaceError(
            f"The check's temporary database could not {doing}: {exc}. Set TMPDIR to a"
            " directory with room for about twice the ledger's state and history."
        ) from exc


def _scratch_errors(doing: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Raise ScratchSpaceError for a failure of the temporary database in the method."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with _scratch(doing):
                return method(*args, **kwargs)

        return run

    return decorate


class DiskReplay:
    """The replay of a whole channel in a temporary database, and its comparison with the store.

    Used by the chain walk as `MemoryReplay` is: `begin_chunk` before a chunk's transactions
    are applied in order, `end_chunk` after. Then `compare` with the stored state and history,
    and `close` (or a `with` block).
    """

    def __init__(self) -> None:
        """Make the temporary database; raise ScratchSpaceError if it cannot be made."""
        with _scratch("be made"):
            self._directory = tempfile.mkdtemp(prefix="healthledger-verify-")
            try:
                self._db = self._create(Path(self._directory) / "replay.db")
            except BaseException:
                shutil.rmtree(self._directory, ignore_errors=True)
                raise
        # The chunk being replayed: versions before it of the keys it reads, and its writes.
        self._before: dict[str, Version] = {}
        self._written: dict[str, tuple[str, Version] | None] = {}
        self._history: list[tuple[object, ...]] = []
        self._filtered = False  # whether some keys are left out of the comparison

    @staticmethod
    def _create(path: Path) -> sqlite3.Connection:
        # Opened by URI, so that a ledger file is attached by one (read-only: `copy_stored`).
        db = sqlite3.connect(f"file:{quote(str(path))}", uri=True, isolation_level=None)
        for pragma in (
            "journal_mode = OFF",
            "synchronous = OFF",
            "main.locking_mode = EXCLUSIVE",  # main only: an attached ledger's locks as ever
            f"cache_size = -{CACHE_KIB}",
            "temp_store = FILE",
        ):
            db.execute(f"PRAGMA {pragma}")
        for statement in _SCHEMA:
            db.execute(statement)
        return db

    def __enter__(self) -> DiskReplay:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close and delete the temporary database."""
        self._db.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    # -- the replay -----------------------------------------------------------------------------

    @_scratch_errors("be read")
    def begin_chunk(self, transactions: list[Transaction]) -> None:
        """Look up, in one query per LOOKUP_BATCH keys, the versions the chunk's reads need."""
        keys = list({key for tx in transactions for key in tx.read_set})
        self._before = {}
        for start in range(0, len(keys), LOOKUP_BATCH):
            batch = keys[start : start + LOOKUP_BATCH]
            marks = ", ".join("?" * len(batch))
            query = f"SELECT key, block, tx FROM replay_state WHERE key IN ({marks})"
            for key, block, index in self._db.execute(query, batch):
                self._before[key] = (block, index)

    def apply(self, tx: Transaction) -> Iterable[str]:
        """Check the transaction (`check_transaction`), replay its writes if it is valid;
        return the keys it wrote."""
        written = check_transaction(tx, self._version_of)
        if written is None:
            return ()
        number, index = tx.block_number, tx.tx_index
        version = (number, index)
        uid, msp = tx.creator.uid, tx.creator.msp
        for key, text in written.items():
            self._written[key] = None if text is None else (text, version)
            self._history.append((key, number, index, tx.tx_id, text, uid, msp, tx.timestamp))
        return written.keys()

    def _version_of(self, key: str) -> Version | None:
        if key in self._written:
            found = self._written[key]
            return None if found is None else found[1]
        return self._before.get(key)

    @_scratch_errors("be written")
    def end_chunk(self) -> None:
        """Write what the chunk replayed: its last write of each key, and its history."""
        written, self._written = self._written, {}
        history, self._history = self._history, []
        self._db.execute("BEGIN")
        self._db.executemany(
            REPLAY_STATE_WRITE,
            ((key, w[0], w[1][0], w[1][1]) for key, w in written.items() if w is not None),
        )
        self._db.executemany(
            "DELETE FROM replay_state WHERE key = ?",
            ((key,) for key, w in written.items() if w is None),
        )
        self._db.executemany(REPLAY_HISTORY_WRITE, history)
        self._db.execute("COMMIT")

    # -- the comparison -------------------------------------------------------------------------

    @_scratch_errors("be written")
    def load_stored(
        self, state: Iterable[Sequence[object]], history: Iterable[Sequence[object]]
    ) -> None:
        """Take the stored world state and history, in any order, a row at a time: (key,
        value, block, transaction) of the state (`LedgerStore.scan_state_rows`), and of the
        history HistoryEntry's fields in their order (`scan_history_rows`)."""
        self._db.execute("BEGIN")
        # A scan that meets a row twice (a Redis scan may) holds it once.
        self._db.executemany(_STORED_STATE, state)
        self._db.executemany(_STORED_HISTORY, history)
        self._db.execute("COMMIT")

    def copy_stored(self, ledger: str, channel: str) -> bool:
        """Take the stored world state and history of `channel` as `load_stored` takes them,
        copied from the SQLite ledger file at the URI `ledger` (opened read-only): one
        INSERT ... SELECT each, in one read transaction of the ledger. False, with nothing
        taken (the copy rolled back), when that failed for whatever reason (a file it cannot
        open or read, no room here): the caller then takes the store's scans, which report
        their own failure as ever (the ledger's, or ScratchSpaceError).

        The copy holds each row as the scans would, value for value and type for type, but
        for a text that is not UTF-8: the scans refuse it (as a failure to read the ledger),
        the copy keeps its bytes. Such a row differs from every replayed one, so the copy is
        trusted only where `copy_matches`."""
        with _scratch("be written"):
            # A journal for the copy alone: a copy that fails is rolled back, leaving this
            # database as it was (without one, a failed statement may leave it damaged).
            if self._db.execute("PRAGMA main.journal_mode = MEMORY").fetchone()[0] != "memory":
                return False
        try:
            self._db.execute("ATTACH DATABASE ? AS ledger", (ledger,))
        except sqlite3.Error:
            self._journal_off()
            return False
        try:
            self._db.execute("BEGIN")
            self._db.execute(_COPY_STATE, (channel,))
            self._db.execute(_COPY_HISTORY, (channel,))
            self._db.execute("COMMIT")
            copied = True
        except sqlite3.Error:
            copied = False
        with _scratch("be written"):
            if self._db.in_transaction:  # the copy failed: nothing of it is kept
                self._db.execute("ROLLBACK")
            self._db.execute("DETACH DATABASE ledger")
        self._journal_off()
        return copied

    @_scratch_errors("be written")
    def _journal_off(self) -> None:
        self._db.execute("PRAGMA main.journal_mode = OFF")

    @_scratch_errors("be written")
    def forget_stored(self) -> None:
        """Drop the stored state and history taken, to take them again."""
        self._db.execute("DELETE FROM stored_state")
        self._db.execute("DELETE FROM stored_history")

    def copy_matches(self, left_out: set[str]) -> bool:
        """Whether the copied state and history (`copy_stored`) are found intact, and the
        scans would have found them so: every compared row equal to a replayed one (so
        UTF-8, as every replayed text is), every row left out a row the scans would read.
        False when the comparison finds damage or fails, for the scans to decide."""
        try:
            if self.earliest_damage(left_out) is not None:
                return False
            for table in ("stored_state", "stored_history"):
                self._db.execute(
                    f"SELECT * FROM {table} WHERE key IN (SELECT key FROM left_out)"
                ).fetchall()  # each text decoded from UTF-8, as the scans decode it
        except (ScratchSpaceError, sqlite3.Error):
            return False
        return True

    @_scratch_errors("be read")
    def earliest_damage(self, left_out: set[str]) -> DamageFoundError | None:
        """The earliest damage to the world state or history of a key not in `left_out`."""
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR IGNORE INTO left_out VALUES (?)", ((k,) for k in left_out))
        self._db.execute("COMMIT")
        self._filtered = bool(left_out)
        found = [self._state_damage(), self._history_damage()]
        damages = [damage for damage in found if damage is not None]
        return min(damages, key=lambda d: d.block_number) if damages else None

    def _kept(self, column: str) -> str:
        """The condition that the key in `column` is compared (not left out)."""
        return f"{column} NOT IN (SELECT key FROM left_out)" if self._filtered else "1"

    def _count(self, table: str) -> int:
        row = self._db.execute(f"SELECT count(*) FROM {table} WHERE {self._kept('key')}")
        return int(row.fetchone()[0])

    def _state_damage(self) -> DamageFoundError | None:
        row = self._db.execute(
            "SELECT CASE WHEN r.key IS NULL THEN s.block ELSE r.block END AS damaged,"
            " r.key IS NULL FROM stored_state AS s LEFT JOIN replay_state AS r ON r.key = s.key"
            " WHERE (r.key IS NULL OR r.value IS NOT s.value OR r.block IS NOT s.block"
            f" OR r.tx IS NOT s.tx) AND {self._kept('s.key')} ORDER BY damaged, s.key LIMIT 1"
        ).fetchone()
        found = None
        if row is not None:
            found = DamageFoundError(row[0], STATE_EXTRA if row[1] else STATE_DIFFERS)
        # Each stored row matches a replayed one of its own: a row is missing only if fewer.
        if found is None and self._count("stored_state") == self._count("replay_state"):
            return None
        missing = self._db.execute(
            "SELECT min(r.block) FROM replay_state AS r WHERE NOT EXISTS"
            " (SELECT 1 FROM stored_state AS s WHERE s.key = r.key)"
            f" AND {self._kept('r.key')}"
        ).fetchone()[0]
        if missing is not None and (found is None or missing < found.block_number):
            return DamageFoundError(missing, STATE_MISSING)
        return found

    def _history_damage(self) -> DamageFoundError | None:
        missing = self._db.execute(
            "SELECT min(r.block) FROM replay_history AS r WHERE NOT EXISTS"
            " (SELECT 1 FROM stored_history AS s WHERE s.key = r.key AND s.block = r.block"
            f" AND s.tx = r.tx AND {_SAME_HISTORY}) AND {self._kept('r.key')}"
        ).fetchone()[0]
        stored, copies = self._db.execute(
            f"SELECT count(*), max(copies) FROM stored_history WHERE {self._kept('key')}"
        ).fetchone()
        # Each replayed entry stored once, and nothing more: the histories are the same.
        if missing is None and (copies or 1) == 1 and stored == self._count("replay_history"):
            return None
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS replay_history_entry ON replay_history (key, block, tx)"
        )
        differs = self._db.execute(
            "SELECT min(s.block) FROM stored_history AS s LEFT JOIN replay_history AS r"
            " ON r.key = s.key AND r.block = s.block AND r.tx = s.tx"
            f" WHERE (r.key IS NULL OR s.copies > 1 OR NOT ({_SAME_HISTORY}))"
            f" AND {self._kept('s.key')}"
        ).fetchone()[0]
        blocks = [block for block in (differs, missing) if block is not None]
        return DamageFoundError(min(blocks), HISTORY_DIFFERS) if blocks else None
