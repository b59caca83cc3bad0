"""CPython's cyclic garbage collector set up for a server, once its app is built, and for
`healthledger verify`, whose check makes objects by the million.

Two settings, both for a process that runs for months under load:

- What the process holds by then (modules, the schema, the stores) is frozen (`gc.freeze`):
  a full collection no longer walks it. That walk kept every request waiting 25-40 ms.
- The youngest generation is collected after YOUNG_THRESHOLD new container objects instead
  of CPython's 700. Under load a transaction's objects live until its block is durable:
  milliseconds, with hundreds of transactions in flight. At 700 a young collection came
  every few transactions and moved the objects still in flight into the older generations,
  which then walked them again, up to full collections of the whole heap, the in-memory
  ledger included. Measured with `bench.ledger_commit`'s 256-submitter run (issue 21):
  on the memory backend 0.5 s of every 5 s run went to the collector (8-11 full
  collections of 30-50 ms), and the CPU per transaction fell from about 40 to 33-35 µs;
  on Redis the rate rose 13-21% in three alternating pairs. A check of 200,000
  transactions by `healthledger verify` took 2-4 µs less CPU a transaction (of 25-30).

The cost: garbage caught in reference cycles waits for up to YOUNG_THRESHOLD more
allocations before a young collection frees it (objects of a few hundred bytes each: a few
megabytes; the 10-minute soak's RSS grew 2.2 MB with this setting). The older generations
keep CPython's thresholds.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG_THRESHOLD: Final = 20_000


def settle() -> None:
    """Freeze what the process holds now and collect the youngest generation less often;
    call it once the app is built, before serving."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
