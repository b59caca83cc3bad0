"""The five-step story clicked through in headless Chromium (web/e2e/story.test.ts, `npm run e2e`).

Two parents, a pediatrician, two schools and an administrator each use their own
browser context with their own client certificate against a real `healthledger serve`
over mutual TLS. The script asserts what each of them sees (the second parent sees the
child only after accepting guardianship, school-b never sees the report, school-a reads
it only while approved, the administrator's explorer hides the others' transactions)
and saves a screenshot per step in web/test-results/story/, where docs/web.md's
pictures are copied from.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.web_app import WEB, web_server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = WEB / "test-results" / "story"
STORY_SECONDS = 150


def test_the_story_in_the_browser(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), "Debian's chromium is needed (`make test` installs it)"
    npm = shutil.which("npm")
    assert npm, "Node.js 20 and npm are needed to drive the browser"
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    with web_server(tmp_path) as (net, server):
        env = {
            **os.environ,
            "E2E_BASE_URL": server.base_url,
            "E2E_NETWORK": str(net.directory),
            "E2E_OUTPUT": str(SCREENSHOTS),
            "E2E_CHROMIUM": str(CHROMIUM),
            # Playwright's client-certificate proxy must trust the network's server CA.
            "NODE_EXTRA_CA_CERTS": str(net.directory / "tls" / "ca.pem"),
            "NO_COLOR": "1",
        }
        started = time.monotonic()
        # Its own session, so a timeout stops npm, Vitest and its worker together.
        with subprocess.Popen(
            [npm, "run", "--silent", "e2e"],
            cwd=WEB,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as story:
            try:
                stdout, stderr = story.communicate(timeout=STORY_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(story.pid, signal.SIGKILL)
                stdout, stderr = story.communicate()
                pytest.fail(f"the story took over {STORY_SECONDS} s:\n{stdout}\n{stderr}")
        elapsed = time.monotonic() - started
    output = f"{stdout}\n{stderr}\nserver log:\n{server.log_text()[-4000:]}"
    assert story.returncode == 0, output
    steps = [line for line in stdout.splitlines() if line[:2] in {"1.", "2.", "3.", "4.", "5."}]
    assert len(steps) == 5, output
    shots = sorted(path.name for path in SCREENSHOTS.glob("*.png"))
    assert len(shots) >= 5 and not any(name.startswith("failure") for name in shots), shots
    assert elapsed < STORY_SECONDS
