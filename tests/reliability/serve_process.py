"""`healthledger serve` as a real subprocess: start, wait until it answers, kill -9, restart.

The reliability tests crash servers on purpose, so they cannot run the app in a
thread the way tests/api_client.api_server does. A `ServeProcess` runs
`python -m api.cli serve` on a network directory and a ledger URL, with the
plain-HTTP health port turned on so readiness is polled without a client
certificate. It keeps its API and health ports across restarts, so clients keep
their base URL. Every start appends to one log file, which failures quote.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from tests.tls_server import free_port

START_SECONDS = 30
STOP_SECONDS = 30
CLI_SECONDS = 60
POLL_SECONDS = 0.05


class ServeProcess:
    """One `healthledger serve` process on `ledger_url`; restartable on the same ports.

    Use it as a context manager: on exit a process still running is killed, so a
    failing test never leaves a server behind.
    """

    def __init__(self, network_dir: Path, ledger_url: str, log: Path) -> None:
        self.network_dir = network_dir
        self.ledger_url = ledger_url
        self.log = log
        self.port = free_port()
        self.health_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """Where clients send GraphQL over mutual TLS."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, seconds: float = START_SECONDS) -> ServeProcess:
        """Start the server and return once it is ready; fails quoting the log otherwise."""
        self.launch()
        self.wait_ready(seconds)
        return self

    def launch(self) -> None:
        """Start the process without waiting (to start several at once, then `wait_ready`)."""
        assert not self.running, "the server is already running"
        command = [
            *("serve", "--network", str(self.network_dir), "--ledger", self.ledger_url),
            *("--port", str(self.port), "--health-port", str(self.health_port)),
        ]
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                cli_command(*command), stdout=output, stderr=subprocess.STDOUT, env=cli_env()
            )

    def wait_ready(self, seconds: float = START_SECONDS) -> None:
        """Wait until /readyz says every ledger answers and the API port accepts connections."""
        deadline = time.monotonic() + seconds
        with httpx.Client(base_url=self.health_url, timeout=2) as probe:
            while True:
                assert self.running, f"the server exited:\n{self.log_text()}"
                if self.ready(probe) and self._accepts_connections():
                    return
                assert time.monotonic() < deadline, (
                    f"the server was not ready within {seconds} s:\n{self.log_text()}"
                )
                time.sleep(POLL_SECONDS)

    def ready(self, probe: httpx.Client | None = None) -> bool:
        """Whether /readyz answers 200 now."""
        try:
            if probe is not None:
                return probe.get("/readyz").status_code == 200
            return httpx.get(f"{self.health_url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def _accepts_connections(self) -> bool:
        # The health port opens in the app's lifespan, a moment before the API port listens.
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def kill(self) -> None:
        """kill -9: no shutdown handler runs, in-flight requests and commits are cut off."""
        assert self.process is not None and self.running, "the server is not running"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self) -> int:
        """SIGTERM and wait for the graceful shutdown; returns the exit code."""
        assert self.process is not None
        if self.running:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"no graceful stop within {STOP_SECONDS} s:\n{self.log_text()}"
            ) from None

    def restart(self, seconds: float = START_SECONDS) -> ServeProcess:
        """Start again on the same ports and ledger after a kill or a stop."""
        if self.running:
            self.kill()
        return self.start(seconds)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.running:
            self.kill()


def cli_command(*args: str) -> list[str]:
    """`healthledger ARGS` run by this interpreter."""
    return [sys.executable, "-m", "api.cli", *args]


def cli_env() -> dict[str, str]:
    """This environment without HEALTHLEDGER_* settings, so only the given flags count."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HEALTHLEDGER_")}


def verify_ledger(network_dir: Path, ledger_url: str) -> subprocess.CompletedProcess[str]:
    """Run `healthledger verify --network DIR --ledger URL`: exit code and output."""
    return subprocess.run(
        cli_command("verify", "--network", str(network_dir), "--ledger", ledger_url),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=CLI_SECONDS,
        check=False,
    )
