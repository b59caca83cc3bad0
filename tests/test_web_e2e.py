"""The five-step story clicked through in headless Chromium (web/e2e/story.test.ts, `npm run e2e`),
then an emergency access, then the app and GraphiQL in a browser that holds the user's
certificate in its own store, then the parent's erasure of the child's records.

Two parents, two pediatricians, two schools and an administrator each use their own
browser context with their own client certificate against a real `healthledger serve`
over mutual TLS. The script asserts what each of them sees (the second parent sees the
child only after accepting guardianship, school-b never sees the report, school-a reads
it only while approved, a pediatrician without an agreement reads the card only under an
emergency access the parents see and end, the administrator's explorer hides the others'
transactions, a parent's browser verifies a card version and the report in the log, and
the parent downloads the child's record as a FHIR R4 Bundle that holds the child) and
saves a screenshot per step in web/test-results/story/, where docs/web.md's pictures are
copied from. The second pediatrician is enrolled here.

A further parent is enrolled with a .p12, which is imported into an NSS database (Chromium's
certificate store on Linux) in a HOME of its own, with the server's CA trusted; a managed
Chromium policy (AutoSelectCertificateForUrls) picks that certificate for the server, where a
person would pick it in the browser's prompt. That browser uses the app, and runs a query and a
subscription in GraphiQL with every request to another host blocked.

Last, the first parent erases the child's records by typing its full name in the dialog: the
child is gone from both parents' lists and from what the pediatrician and the school see.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from authz import provision
from devkit.devnet import DEMO_P12_PASSWORD
from tests.web_app import WEB, web_server

CHROMIUM = Path("/usr/bin/chromium")
# Where Debian's Chromium reads the policies an administrator sets for every user.
CHROMIUM_POLICIES = Path("/etc/chromium/policies/managed")
SCREENSHOTS = WEB / "test-results" / "story"
STORY_SECONDS = 150
OWN_STORE_USER = ("parents", "carol", "parent", "Carol Diaz")
EMERGENCY_DOCTOR = ("hospital", "dr-grey", "doctor", "Dr. Meredith Grey")


@contextmanager
def certificate_store_home(home: Path, p12: Path, server_ca: Path, origin: str) -> Iterator[None]:
    """`home` with an NSS database holding the user's `p12` and trusting `server_ca`, while a
    managed Chromium policy (a file of its own, removed afterwards) presents that certificate
    to `origin` without asking."""
    assert shutil.which("pk12util"), "Debian's libnss3-tools is needed (`make test` installs it)"
    store = home / ".pki" / "nssdb"
    store.mkdir(parents=True)
    database = ["-d", f"sql:{store}"]
    _run(["certutil", "-N", "--empty-password", *database])
    _run(["pk12util", "-i", str(p12), "-W", DEMO_P12_PASSWORD, *database])
    # Trusted to identify websites: "C" in the SSL column.
    _run(["certutil", "-A", "-n", "server CA", "-t", "C,,", "-i", str(server_ca), *database])
    policy = CHROMIUM_POLICIES / f"healthledger-e2e-{uuid.uuid4().hex}.json"
    # The store holds the one user certificate, so an empty filter picks it.
    rule = json.dumps({"pattern": origin, "filter": {}})
    try:
        CHROMIUM_POLICIES.mkdir(parents=True, exist_ok=True)
        policy.write_text(json.dumps({"AutoSelectCertificateForUrls": [rule]}))
    except PermissionError:
        pytest.fail(f"the test sets a Chromium policy in {CHROMIUM_POLICIES}, which needs root")
    try:
        yield
    finally:
        policy.unlink()


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


def test_the_story_in_the_browser(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), "Debian's chromium is needed (`make test` installs it)"
    npm = shutil.which("npm")
    assert npm, "Node.js 20 and npm are needed to drive the browser"
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    with web_server(tmp_path) as (net, server):
        doctor_org, doctor, doctor_role, doctor_name = EMERGENCY_DOCTOR
        provision.enroll(
            net.directory, org=doctor_org, uid=doctor, role=doctor_role, name=doctor_name
        )
        org, uid, role, name = OWN_STORE_USER
        enrolled = provision.enroll(
            net.directory, org=org, uid=uid, role=role, name=name, p12_password=DEMO_P12_PASSWORD
        )
        assert enrolled.p12 is not None
        server_ca = net.directory / "tls" / "ca.pem"
        env = {
            **os.environ,
            "E2E_BASE_URL": server.base_url,
            "E2E_NETWORK": str(net.directory),
            "E2E_OUTPUT": str(SCREENSHOTS),
            "E2E_CHROMIUM": str(CHROMIUM),
            # Playwright's client-certificate proxy must trust the network's server CA.
            "NODE_EXTRA_CA_CERTS": str(server_ca),
            "E2E_NSS_HOME": str(tmp_path / "home"),
            "E2E_NSS_UID": uid,
            "E2E_EMERGENCY_DOCTOR": doctor,
            "NO_COLOR": "1",
        }
        started = time.monotonic()
        # Its own session, so a timeout stops npm, Vitest and its worker together.
        with (
            certificate_store_home(tmp_path / "home", enrolled.p12, server_ca, server.base_url),
            subprocess.Popen(
                [npm, "run", "--silent", "e2e"],
                cwd=WEB,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            ) as story,
        ):
            try:
                stdout, stderr = story.communicate(timeout=STORY_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(story.pid, signal.SIGKILL)
                stdout, stderr = story.communicate()
                pytest.fail(f"the story took over {STORY_SECONDS} s:\n{stdout}\n{stderr}")
        elapsed = time.monotonic() - started
    output = f"{stdout}\n{stderr}\nserver log:\n{server.log_text()[-4000:]}"
    assert story.returncode == 0, output
    steps = [
        line
        for line in stdout.splitlines()
        if line[:2] in {"1.", "2.", "3.", "4.", "5.", "6.", "7.", "8."}
    ]
    assert len(steps) == 8, output
    shots = sorted(path.name for path in SCREENSHOTS.glob("*.png"))
    for picture in ("parent-emergency-banner", "graphiql-subscription-event", "parent-erased"):
        assert picture in " ".join(shots), shots
    assert len(shots) >= 7 and not any(name.startswith("failure") for name in shots), shots
    assert elapsed < STORY_SECONDS
