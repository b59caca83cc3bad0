"""The server's garbage-collector settings: what is loaded is frozen, young collections come
every YOUNG_THRESHOLD allocations, the older generations keep CPython's thresholds."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

from api.collector import YOUNG_THRESHOLD

# In a process of its own, so this suite's collector is left as it was. Prints the thresholds
# and frozen count before and after, and how many young collections 50,000 new containers
# that stay alive caused.
PROBE = textwrap.dedent(
    """
    import gc, json
    from api import collector
    before = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
    collector.settle()
    after = {"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}
    gc.collect()
    young = gc.get_stats()[0]["collections"]
    kept = [[] for _ in range(50_000)]
    after["young_collections"] = gc.get_stats()[0]["collections"] - young
    print(json.dumps({"before": before, "after": after}))
    """
)


def probe() -> dict[str, dict[str, Any]]:
    run = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    found: dict[str, dict[str, Any]] = json.loads(run.stdout)
    return found


def test_settle_freezes_what_is_loaded_and_collects_the_young_less_often() -> None:
    found = probe()
    before, after = found["before"], found["after"]
    assert before["frozen"] == 0
    assert after["frozen"] > 1_000  # the modules, at least
    assert after["threshold"] == [YOUNG_THRESHOLD, *before["threshold"][1:]]
    # 50,000 containers: 2 young collections at 20,000, where CPython's 700 made 71.
    assert after["young_collections"] == 50_000 // YOUNG_THRESHOLD
