"""The server's malloc settings: large blocks go back to the system, arenas are few, and
free memory is trimmed; nothing changes on a C library without them."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from api.allocator import MAX_ARENAS, MMAP_THRESHOLD, Allocator, _limit_and_trim

glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="mallopt and malloc_trim are glibc's"
)

# Run in a process of its own, so this suite's allocator is left as it was. A block of the
# size of a TLS connection's buffer is freed, then another made: prints whether the second
# is a mapping of its own (malloc_info's mmap count rises while it lives), and how many
# arenas malloc has after eight threads allocated at once.
PROBE = textwrap.dedent(
    """
    import ctypes, os, re, sys, tempfile, threading
    from api import allocator
    if sys.argv[1] == "configured":
        assert allocator.configure()
    libc = ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]

    def info():
        with tempfile.NamedTemporaryFile("r") as out:
            stream = libc.fopen(out.name.encode(), b"w")
            libc.malloc_info(0, stream)
            libc.fclose(stream)
            text = out.read()
        mapped = re.search(r'<total type="mmap" count="(\\d+)"', text)
        return int(mapped[1]), text.count("<heap nr=")

    block = bytearray(256 * 1024)
    del block
    before, _ = info()
    block = bytearray(256 * 1024)
    during, _ = info()
    del block

    def churn():
        for _ in range(2000):
            bytes(4096 + threading.get_ident() % 512)

    threads = [threading.Thread(target=churn) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(during - before, info()[1])
    """
)


def probe(mode: str) -> tuple[int, int]:
    found = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    mapped, arenas = found.stdout.split()
    return int(mapped), int(arenas)


@glibc_only
def test_a_large_block_freed_keeps_later_ones_mapped_and_the_arenas_stay_few() -> None:
    # glibc's own behaviour, which made the soak's heap grow: the freed block raises the
    # mmap threshold, so the next one is carved from the heap.
    assert probe("default")[0] == 0
    mapped, arenas = probe("configured")
    assert mapped == 1
    assert arenas <= MAX_ARENAS


class FakeLibc:
    """A C library's mallopt and malloc_trim as plain functions that record their calls."""

    def __init__(self, *, accepts: bool = True) -> None:
        self.options: list[tuple[int, int]] = []
        self.trims = 0
        self.accepts = accepts

        def mallopt(parameter: int, value: int) -> int:
            self.options.append((parameter, value))
            return 1 if self.accepts else 0

        def malloc_trim(pad: int) -> int:
            self.trims += 1
            return 1

        self.mallopt: Any = mallopt
        self.malloc_trim: Any = malloc_trim


def test_limit_sets_the_arenas_and_fixes_both_thresholds() -> None:
    libc = FakeLibc()
    allocator = Allocator(libc)  # type: ignore[arg-type]
    assert allocator.available
    assert allocator.limit()
    assert libc.options == [(-8, MAX_ARENAS), (-3, MMAP_THRESHOLD), (-1, 128 * 1024)]
    assert allocator.trim()
    assert libc.trims == 1


def test_the_trimming_thread_trims_every_period() -> None:
    libc = FakeLibc()
    assert _limit_and_trim(0.01, Allocator(libc))  # type: ignore[arg-type]
    deadline = time.monotonic() + 5
    while libc.trims < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert libc.trims >= 3


def test_a_library_without_mallopt_is_left_alone() -> None:
    allocator = Allocator(object())  # type: ignore[arg-type]
    assert not allocator.available
    assert not allocator.limit()
    assert not allocator.trim()
    assert not _limit_and_trim(0.01, allocator)


def test_a_refused_setting_starts_no_trimming() -> None:
    libc = FakeLibc(accepts=False)
    assert not _limit_and_trim(0.01, Allocator(libc))  # type: ignore[arg-type]
    assert libc.trims == 0
