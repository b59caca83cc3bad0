"""glibc's malloc set up for a long-running server: memory freed goes back to the system.

Measured in the 10-minute soak (issue 21): the server's RSS grew 2-3.5 MB a minute while
its live Python objects (tracemalloc, pymalloc's allocated blocks) and the bytes glibc had
handed out (malloc_info) stayed flat. What grew was memory freed but kept by malloc:

- an arena per thread that ever allocated under contention (up to 8 per core; the asyncio
  pool, the committers' threads and the event loop each fill their own), every arena
  keeping the free chunks of its own high-water mark;
- the mmap threshold glibc raises each time a mapped block is freed: after the first
  connection's 256 KiB TLS buffer went, every later one was carved from the main heap,
  where connections opening and closing left it in holes;
- free pages in the middle of a heap, which malloc never returns by itself.

So each server process, before its threads start, caps malloc at MAX_ARENAS arenas and
fixes the mmap threshold (blocks of MMAP_THRESHOLD bytes or more are mapped and unmapped,
the threshold no longer rises), and a daemon thread hands free pages back every
TRIM_SECONDS (`malloc_trim`: about a millisecond or two once the heaps are in use, one
arena locked at a time). Nothing is done where the C library has no such calls or refuses
them (musl, macOS): `configure` says so.

Not addressed here: pymalloc's own arenas, which go back only when wholly empty (about
4 MB of the growth in 5 minutes of the soak).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from typing import Final

logger = logging.getLogger(__name__)

MAX_ARENAS: Final = 2
MMAP_THRESHOLD: Final = 128 * 1024  # glibc's default, fixed instead of raised on each free
TRIM_SECONDS: Final = 30.0
# mallopt's parameter numbers, from glibc's malloc.h.
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_M_ARENA_MAX: Final = -8
_TRIM_THRESHOLD: Final = 128 * 1024  # glibc's default; set, so that it too stays fixed


class Allocator:
    """The process's glibc malloc, or nothing (`available` false) on another C library."""

    def __init__(self, library: ctypes.CDLL | None = None) -> None:
        if library is None:
            name = ctypes.util.find_library("c")
            library = ctypes.CDLL(name) if name else None
        self._mallopt = getattr(library, "mallopt", None)
        self._malloc_trim = getattr(library, "malloc_trim", None)
        if self._mallopt is not None:
            self._mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            self._mallopt.restype = ctypes.c_int
        if self._malloc_trim is not None:
            self._malloc_trim.argtypes = [ctypes.c_size_t]
            self._malloc_trim.restype = ctypes.c_int

    @property
    def available(self) -> bool:
        return self._mallopt is not None and self._malloc_trim is not None

    def limit(self) -> bool:
        """Cap the arenas and fix the mmap and trim thresholds; whether malloc took all three.

        Arenas already made stay; so this belongs before the process starts its threads."""
        if self._mallopt is None:
            return False
        settings = (
            (_M_ARENA_MAX, MAX_ARENAS),
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
        )
        return all(self._mallopt(parameter, value) == 1 for parameter, value in settings)

    def trim(self) -> bool:
        """Return free memory at the heaps' tops and free pages within them to the system;
        whether any was returned."""
        return self._malloc_trim is not None and self._malloc_trim(0) == 1


_configuring = threading.Lock()
_configured: list[bool] = []  # the first `configure`'s answer, once given


def configure(seconds: float = TRIM_SECONDS, allocator: Allocator | None = None) -> bool:
    """Limit malloc and start the daemon thread that trims it every `seconds`, once per
    process; whether malloc is so set up (False: another C library, nothing changed)."""
    with _configuring:
        if not _configured:
            _configured.append(_limit_and_trim(seconds, allocator or Allocator()))
        return _configured[0]


def _limit_and_trim(seconds: float, allocator: Allocator) -> bool:
    if not allocator.available or not allocator.limit():
        logger.info("malloc did not take the server's settings (not glibc?): left as it is.")
        return False

    def trim_forever() -> None:
        while True:
            time.sleep(seconds)
            allocator.trim()

    threading.Thread(target=trim_forever, name="healthledger-malloc-trim", daemon=True).start()
    return True
