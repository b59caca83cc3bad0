"""The access log: on with or without the health port, never with a query string, and
one line per GraphQL operation naming who and its root fields."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx

from api.access_log import QueryStringsWithheld
from devkit.serve_process import ServeProcess
from tests.networks import make_network

SECRET = "diagnosis ADHD"


def test_a_query_string_is_withheld_from_an_access_log_record() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/graphql?query=%7Bme%7D&variables=ADHD", "1.1", 200),
        None,
    )
    assert QueryStringsWithheld().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /graphql?… HTTP/1.1" 200'


def access_record(path: str) -> logging.LogRecord:
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200),
        None,
    )


def test_the_child_a_fhir_export_names_is_withheld_from_an_access_log_record() -> None:
    child = "child-0123456789abcdef0123456789abcdef"
    for path, logged in [
        (f"/fhir/Patient/{child}/$everything", "/fhir/Patient/…/$everything"),
        (f"/fhir/Patient/{child}/$everything?_format=json", "/fhir/Patient/…/$everything?…"),
        (f"/fhir/Patient/{child}", "/fhir/Patient/…"),
        (f"/fhir/Consent?patient={child}", "/fhir/Consent?…"),
        ("/fhir/metadata", "/fhir/metadata"),
    ]:
        record = access_record(path)
        assert QueryStringsWithheld().filter(record)
        assert record.getMessage() == f'127.0.0.1:5000 - "GET {logged} HTTP/1.1" 200'


def test_serve_with_a_health_port_logs_requests_without_their_query_strings(
    tmp_path: Path,
) -> None:
    net = make_network(tmp_path / "network")
    log = tmp_path / "serve.log"
    with ServeProcess(net.directory, f"sqlite:///{tmp_path / 'ledger.db'}", log).start() as server:
        with httpx.Client(verify=net.client_context("alice")) as client:
            answer = client.get(
                f"{server.base_url}/graphql",
                params={"query": "{ me { uid } }", "variables": json.dumps({"note": SECRET})},
                headers={"accept": "application/json"},
            )
        assert answer.status_code in (200, 400)
        deadline = time.monotonic() + 5
        while '"GET /graphql?… HTTP/1.1"' not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"no access-log line:\n{log.read_text()}"
            time.sleep(0.1)
    text = log.read_text(errors="replace")
    assert "healthledger.operations: parents/alice (parent): me ok" in text
    assert SECRET not in text and "ADHD" not in text
    assert "/healthz" not in text  # the readiness probes of the harness are not logged
