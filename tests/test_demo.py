"""`healthledger demo`: the story through the public API, who saw what, both chains verified."""

from __future__ import annotations

import re
import subprocess
import time

from devkit.serve_process import cli_command


def test_demo_runs_the_story_and_shows_who_sees_what() -> None:
    started = time.monotonic()
    result = subprocess.run(cli_command("demo"), capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 30
    out = result.stdout
    steps = [
        ("alice (parent)", "registerChild", "card version 1", "medical #0"),
        ("alice (parent)", "signAgreement", "PENDING", "medical #1"),
        ("dr-house (doctor)", "acceptAgreement", "ACTIVE", "medical #2"),
        ("dr-house (doctor)", "updateMedicalCard", "card version 2", "medical #3"),
        ("alice (parent)", "createAdmissionRequest", "PENDING", "report #0"),
        ("school-a-office (school)", "acceptAdmissionRequest", "ACCEPTED", "report #1"),
        ("school-a-office (school)", "createReportRequest", "PENDING", "report #2"),
        ("dr-house (doctor)", "createReport", "READY", "report #3"),
        ("alice (parent)", "approveReport", "APPROVED for school-a", "report #4"),
    ]
    lines = [line.split() for line in out.splitlines()]
    for who, operation, status, block in steps:
        assert [*who.split(), operation, *status.split(), *block.split()] in lines, out
    visibility = out[out.index("who could see what") :]
    rows = {tuple(line.split()[:4]): line for line in visibility.splitlines()[2:7]}
    school_a = ("school-a-office", "(school)")
    assert "READY; content refused (FORBIDDEN)" in rows[(*school_a, "before", "approval")]
    assert 'APPROVED; "Healthy' in rows[(*school_a, "after", "approval")]
    assert rows[("school-b-office", "(school)", "after", "approval")].count("refused") == 2
    for row in rows.values():
        assert "NOT what the access rules allow" not in row
        if "(school)" in row:
            assert row.rstrip().endswith("refused (FORBIDDEN)"), row  # never a card for a school
    # Beyond the story's writes, the chains hold the access-log entries of the reads above.
    for channel, writes in (("medical", 4), ("report", 5)):
        verified = re.search(
            rf"^{channel}: ok, (\d+) blocks; hashes, state and history match$", out, re.M
        )
        assert verified is not None and int(verified[1]) > writes, out
    assert "demo passed" in out
    assert result.stderr == ""
